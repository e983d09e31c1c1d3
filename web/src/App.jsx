import { useCallback, useEffect, useRef, useState } from "react";
import {
  TradewireProvider,
  useAdminStats,
  useConnectionState,
  useMarketStatus,
  useNotifications,
  usePortfolio,
  useQuote,
  useTrades,
  useTradewire,
} from "@tradewire/react";

const MAX_SUBSCRIPTIONS = 50;
const SYMBOL_RE = /^[A-Z0-9][A-Z0-9.\-]{0,14}$/;
const AUTH_CODES = ["UNAUTHORIZED", "SESSION_NOT_FOUND", "SESSION_EXPIRED", "USER_MISMATCH", "FORBIDDEN"];

const store = {
  get(key, fallback) {
    try {
      const v = localStorage.getItem("tradewire:" + key);
      return v == null ? fallback : JSON.parse(v);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem("tradewire:" + key, JSON.stringify(value));
    } catch {
      /* private mode: nothing kept */
    }
  },
};

// Transports can be forced with ?transports=polling (used by the browser tests).
function socketOptions() {
  const q = new URLSearchParams(window.location.search);
  const t = q.get("transports");
  return t ? { transports: t.split(",") } : {};
}

export function App() {
  const [user, setUser] = useState(() => store.get("user", null));
  const [authError, setAuthError] = useState(null);
  const onAuthFailed = useCallback((err) => {
    setAuthError(err);
    setUser(null);
    store.set("user", null);
  }, []);
  if (!user) {
    return (
      <Login
        error={authError}
        onLogin={(u) => {
          store.set("user", u);
          setAuthError(null);
          setUser(u);
        }}
      />
    );
  }
  return (
    <TradewireProvider url={window.location.origin} options={socketOptions()}>
      <Dashboard user={user} onAuthFailed={onAuthFailed} onLogout={() => onAuthFailed(null)} />
    </TradewireProvider>
  );
}

function Login({ error, onLogin }) {
  const [userId, setUserId] = useState("");
  const [role, setRole] = useState("user");
  const [msg, setMsg] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setMsg(null);
    try {
      const r = await fetch("/dev/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ userId: userId.trim(), role }),
      });
      if (r.status === 404) {
        setMsg("Dev login is off on this gateway: sign in through the trading app, then continue with its session.");
        return;
      }
      const body = await r.json();
      if (!r.ok) {
        setMsg(body?.error?.message || "login failed");
        return;
      }
      onLogin({ userId: body.userId, role: body.role, tier: body.tier });
    } catch (err) {
      setMsg("The gateway cannot be reached: " + err.message);
    }
  }
  return (
    <main className="login">
      <h1>tradewire</h1>
      {error && <p className="error">Signed out: {error.code} — {error.message}</p>}
      <form onSubmit={submit}>
        <label>
          User id <input data-testid="login-user" value={userId} onChange={(e) => setUserId(e.target.value)} required />
        </label>
        <label>
          Role{" "}
          <select value={role} onChange={(e) => setRole(e.target.value)}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <button data-testid="login-submit" type="submit">
          Dev login
        </button>
      </form>
      <button className="link" onClick={() => onLogin({ userId: "", role: "user" })}>
        Continue with my existing session (connect.sid cookie)
      </button>
      {msg && <p className="error">{msg}</p>}
    </main>
  );
}

function Dashboard({ user, onAuthFailed, onLogout }) {
  const { client, state, error } = useTradewire();
  useEffect(() => {
    window.tradewire = client; // for the browser tests and the console
  }, [client]);
  useEffect(() => {
    if (state === "offline" && error && AUTH_CODES.includes(error.code)) onAuthFailed(error);
  }, [state, error, onAuthFailed]);
  return (
    <div className="dashboard">
      <header>
        <h1>tradewire</h1>
        <MarketStatus />
        <ConnectionBadge />
        <span className="user">
          {user.userId || "session user"} ({user.role})
          <button className="link" onClick={onLogout}>
            sign out
          </button>
        </span>
      </header>
      <Degraded />
      <div className="grid">
        <Watchlist />
        <aside>
          <Portfolio />
          <Notifications />
          {user.role === "admin" && <AdminStats />}
        </aside>
      </div>
      <Toasts />
    </div>
  );
}

function ConnectionBadge() {
  const { state, error, retryAt } = useConnectionState();
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!retryAt) return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [retryAt]);
  const secs = retryAt ? Math.max(0, Math.ceil((retryAt - now) / 1000)) : null;
  return (
    <span className={"badge " + state} title={error ? `${error.code}: ${error.message}` : ""}>
      <span data-testid="connection-status">{state}</span>
      {secs != null && state !== "connected" && <span className="countdown"> · retry in {secs}s</span>}
    </span>
  );
}

function MarketStatus() {
  const m = useMarketStatus();
  const status = m ? String(m.status ?? "unknown") : "unknown";
  return (
    <span data-testid="market-status" className={"market " + status}>
      market {status}
    </span>
  );
}

// Degraded shows what to do when the socket cannot connect: the last data
// stays on screen, with its age and a manual refresh.
function Degraded() {
  const { client, state, error } = useTradewire();
  const [lastLive, setLastLive] = useState(store.get("lastLive", null));
  useEffect(() => {
    if (state === "connected") {
      const now = Date.now();
      store.set("lastLive", now);
      setLastLive(now);
    }
  }, [state]);
  if (state === "connected" || state === "connecting") return null;
  return (
    <div className="degraded" data-testid="degraded">
      Live updates are unavailable ({error ? error.code + ": " + error.message : state}).{" "}
      {lastLive ? `Showing the last data, from ${new Date(lastLive).toLocaleTimeString()}.` : "No data yet."}{" "}
      <button onClick={() => client.open()}>Refresh now</button>
    </div>
  );
}

function Watchlist() {
  const [symbols, setSymbols] = useState(() => store.get("watchlist", ["AAPL", "MSFT"]));
  const [input, setInput] = useState("");
  const [errors, setErrors] = useState({});
  useEffect(() => store.set("watchlist", symbols), [symbols]);
  function add(e) {
    e.preventDefault();
    const wanted = input
      .split(/[\s,]+/)
      .map((s) => s.trim().toUpperCase())
      .filter(Boolean);
    const bad = wanted.filter((s) => !SYMBOL_RE.test(s));
    if (bad.length) {
      setErrors({ _: `invalid symbol ${bad.join(", ")}` });
      return;
    }
    setErrors({});
    setSymbols((cur) => [...cur, ...wanted.filter((s) => !cur.includes(s))]);
    setInput("");
  }
  const remove = useCallback((sym) => setSymbols((cur) => cur.filter((s) => s !== sym)), []);
  const onError = useCallback(
    (sym, err) => {
      setErrors((cur) => ({ ...cur, [sym]: err }));
      remove(sym);
    },
    [remove],
  );
  const used = symbols.length + 2; // portfolio: and trades: rooms count too
  return (
    <section className="watchlist">
      <h2>
        Watchlist <span data-testid="subscription-count">{used}/{MAX_SUBSCRIPTIONS}</span>
      </h2>
      <form onSubmit={add}>
        <input data-testid="watch-input" placeholder="AAPL, MSFT…" value={input} onChange={(e) => setInput(e.target.value)} />
        <button data-testid="watch-add" type="submit">
          Add
        </button>
      </form>
      {Object.entries(errors).map(([sym, err]) => (
        <p key={sym} className="error" data-testid="watch-error">
          {typeof err === "string" ? err : `${sym}: ${err.code} — ${err.message}${err.retryAfterMs ? ` (retry in ${Math.ceil(err.retryAfterMs / 1000)} s)` : ""}`}
        </p>
      ))}
      <table className="quotes">
        <thead>
          <tr>
            <th>Symbol</th>
            <th>Price</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {symbols.map((s) => (
            <QuoteRow key={s} symbol={s} onRemove={remove} onError={onError} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

function QuoteRow({ symbol, onRemove, onError }) {
  const { quote, error } = useQuote(symbol);
  const prev = useRef(null);
  const [flash, setFlash] = useState("");
  useEffect(() => {
    if (error) onError(symbol, error);
  }, [error, symbol, onError]);
  const price = typeof quote?.price === "number" ? quote.price : null;
  useEffect(() => {
    if (price == null) return;
    if (prev.current != null && price !== prev.current) {
      setFlash(price > prev.current ? "up" : "down");
      const t = setTimeout(() => setFlash(""), 600);
      prev.current = price;
      return () => clearTimeout(t);
    }
    prev.current = price;
  }, [price, quote]);
  return (
    <tr data-testid={"quote-row-" + symbol} data-price={price ?? ""} className={flash}>
      <td>{symbol}</td>
      <td className="price">{price != null ? price.toFixed(2) : "—"}</td>
      <td>{quote ? new Date(quote.timestamp).toLocaleTimeString() : "waiting"}</td>
      <td>
        <button data-testid={"unwatch-" + symbol} onClick={() => onRemove(symbol)} title="remove">
          ×
        </button>
      </td>
    </tr>
  );
}

function Portfolio() {
  const { portfolio, positionsClosed, error } = usePortfolio();
  const p = portfolio?.portfolio;
  const value = p ? (p.totalValue ?? p.value ?? p.equity ?? null) : null;
  return (
    <section className="portfolio">
      <h2>Portfolio</h2>
      {error && <p className="error">{error.code}: {error.message}</p>}
      <p>
        Value: <strong data-testid="portfolio-value">{value != null ? Number(value).toLocaleString(undefined, { style: "currency", currency: "USD" }) : "—"}</strong>
      </p>
      {p && <pre>{JSON.stringify(p, null, 1)}</pre>}
      {positionsClosed.slice(0, 3).map((c, i) => (
        <p key={i} className="muted">
          {c.notification.message}
        </p>
      ))}
    </section>
  );
}

function Notifications() {
  const { notifications, clear } = useNotifications();
  return (
    <section className="notifications">
      <h2>
        Notifications{" "}
        {notifications.length > 0 && (
          <button className="link" onClick={clear}>
            clear
          </button>
        )}
      </h2>
      {notifications.length === 0 && <p className="muted">none</p>}
      {notifications.slice(0, 10).map((n, i) => (
        <p key={n.eventId ?? i} data-testid="notification" className={"note " + n.notification.type}>
          <strong>{n.notification.title}</strong> {n.notification.message}
        </p>
      ))}
    </section>
  );
}

function AdminStats() {
  const { stats, error } = useAdminStats();
  const nodes = Object.values(stats);
  return (
    <section className="admin" data-testid="admin-stats">
      <h2>Cluster (live)</h2>
      {error && <p className="error">{error.code}: {error.message}</p>}
      {nodes.length === 0 && <p className="muted">waiting for stats:update (every 5 s)</p>}
      <table>
        <tbody>
          {nodes.map((s) => (
            <tr key={s.nodeId}>
              <td>{s.nodeId}</td>
              <td>{s.connections} connections</td>
              <td>{s.users} users</td>
              <td>{s.draining ? "draining" : s.limiterMode}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Toasts() {
  const { trades } = useTrades({ limit: 5 });
  const [hidden, setHidden] = useState(() => new Set());
  const seen = useRef(new Map());
  const now = Date.now();
  for (const t of trades) if (!seen.current.has(t)) seen.current.set(t, now);
  const [, tick] = useState(0);
  useEffect(() => {
    const i = setInterval(() => tick((x) => x + 1), 1000);
    return () => clearInterval(i);
  }, []);
  const visible = trades.filter((t) => !hidden.has(t) && now - seen.current.get(t) < 8000);
  return (
    <div className="toasts">
      {visible.map((t, i) => (
        <div key={t.eventId ?? i} data-testid="toast" className={"toast " + t.kind} onClick={() => setHidden(new Set(hidden).add(t))}>
          <strong>{t.notification.title}</strong>
          <div>{t.notification.message}</div>
        </div>
      ))}
    </div>
  );
}
