'use strict';
// Node socket.io baseline for the tradewire benchmarks.
//
// It reproduces the seed system's WebSocket server (auth middleware on the
// signed connect.sid cookie against connect-redis sessions, the user /
// portfolio / trades / watchlist rooms, subscribe handlers with confirmation
// events and ack callbacks, the trade emitters) and exposes the same HTTP
// publish API as tradewire so the load generator drives both identically:
//
//   POST /api/v1/emit    Authorization: Bearer <key>
//        {"rooms":["watchlist:AAPL"],"event":"quote:update","data":{...}} or an array of those
//   POST /api/v1/events  Authorization: Bearer <key>
//        {"type":"trade.executed","userId":"u1","trade":{...}} or an array of those
//   GET  /debug/vars     process.memoryUsage() and socket count (no auth, bind to loopback)
//   GET  /health
//
// Environment:
//   PORT (3000), HOST (127.0.0.1), REDIS_URL (redis://127.0.0.1:6379),
//   SESSION_SECRETS (comma separated, first signs; "keyboard cat"), SESSION_PREFIX ("sess:"),
//   API_KEYS (comma separated; "bench-api-key-0123456789"), ADAPTER ("memory" | "redis"),
//   RATE_LIMIT ("off" | "memory" | "redis"), RATE_CONNECTIONS_PER_MINUTE (10),
//   RATE_EVENTS_PER_MINUTE (100), MAX_WATCHLIST_SYMBOLS (50),
//   PING_INTERVAL (25000 ms), PING_TIMEOUT (20000 ms).

const http = require('http');
const { Server } = require('socket.io');
const { createClient } = require('redis');
const cookie = require('cookie');
const signature = require('cookie-signature');

const env = process.env;
const PORT = parseInt(env.PORT || '3000', 10);
const HOST = env.HOST || '127.0.0.1';
const REDIS_URL = env.REDIS_URL || 'redis://127.0.0.1:6379';
const SECRETS = (env.SESSION_SECRETS || 'keyboard cat').split(',').filter(Boolean);
const SESSION_PREFIX = env.SESSION_PREFIX || 'sess:';
const API_KEYS = new Set((env.API_KEYS || 'bench-api-key-0123456789').split(',').filter(Boolean));
const ADAPTER = env.ADAPTER || 'memory';
const RATE_LIMIT = env.RATE_LIMIT || 'off';
const CONN_PER_MIN = parseInt(env.RATE_CONNECTIONS_PER_MINUTE || '10', 10);
const EVENTS_PER_MIN = parseInt(env.RATE_EVENTS_PER_MINUTE || '100', 10);
const MAX_SYMBOLS = parseInt(env.MAX_WATCHLIST_SYMBOLS || '50', 10);
const PING_INTERVAL = parseInt(env.PING_INTERVAL || '25000', 10);
const PING_TIMEOUT = parseInt(env.PING_TIMEOUT || '20000', 10);
const SYMBOL_RE = /^[A-Z0-9.\-]{1,12}$/;
const MAX_BODY = 1 << 20;

function log(msg, extra) {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg, ...extra }) + '\n');
}

// ---- sessions (connect-redis format) ----------------------------------------

// sessionIdFromCookie returns the sid of a valid signed connect.sid cookie, or null.
function sessionIdFromCookie(header) {
  if (!header) return null;
  const raw = cookie.parse(header)['connect.sid']; // cookie.parse keeps the first, decodes %XX
  if (!raw || raw.slice(0, 2) !== 's:') return null;
  for (const secret of SECRETS) {
    const sid = signature.unsign(raw.slice(2), secret);
    if (sid !== false) return sid;
  }
  return null;
}

// ---- rate limiting (fixed window per minute, like the seed's limiter) -------

class RateLimiter {
  constructor(mode, redis) {
    this.mode = mode;
    this.redis = redis;
    this.mem = new Map();
    if (mode === 'memory') {
      setInterval(() => {
        const now = Date.now();
        for (const [k, v] of this.mem) if (v.reset <= now) this.mem.delete(k);
      }, 60000).unref();
    }
  }

  // allow resolves true while key has been hit at most limit times this minute.
  async allow(key, limit) {
    if (this.mode === 'off') return true;
    const window = Math.floor(Date.now() / 60000);
    if (this.mode === 'redis') {
      try {
        const k = `ratelimit:${key}:${window}`;
        const [n] = await this.redis.multi().incr(k).expire(k, 61).exec();
        return Number(n) <= limit;
      } catch (err) {
        // fall back to memory, as the seed does when Redis is unavailable
      }
    }
    const now = Date.now();
    let e = this.mem.get(key);
    if (!e || e.reset <= now) {
      e = { n: 0, reset: (window + 1) * 60000 };
      this.mem.set(key, e);
    }
    e.n++;
    return e.n <= limit;
  }
}

// ---- HTTP publish API --------------------------------------------------------

function sendJSON(res, status, body) {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function authorized(req) {
  const h = req.headers.authorization || '';
  return h.startsWith('Bearer ') && API_KEYS.has(h.slice(7));
}

function validEmit(m) {
  return m && typeof m === 'object' && Array.isArray(m.rooms) &&
    m.rooms.every((r) => typeof r === 'string' && r.length > 0) &&
    typeof m.event === 'string' && m.event.length > 0;
}

// The seed's emitters (src/services/websocket/emitters): domain event -> room + payload.
function domainEmit(io, ev) {
  if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string') return false;
  const userId = ev.userId != null ? String(ev.userId) : '';
  const timestamp = new Date().toISOString();
  switch (ev.type) {
    case 'trade.executed': {
      if (!userId || !ev.trade || typeof ev.trade !== 'object') return false;
      const t = ev.trade;
      io.to(`trades:${userId}`).emit('trade:executed', {
        userId,
        trade: t,
        timestamp,
        notification: {
          title: `Trade Executed: ${t.symbol}`,
          message: `${String(t.side || '').toUpperCase()} ${t.quantity} ${t.symbol} @ $${t.price}`,
          type: 'success',
        },
      });
      return true;
    }
    case 'trade.failed':
      if (!userId) return false;
      io.to(`trades:${userId}`).emit('trade:failed', {
        userId, error: ev.error || {}, timestamp,
        notification: { title: 'Trade Failed', message: (ev.error && ev.error.message) || 'Trade failed', type: 'error' },
      });
      return true;
    case 'portfolio.updated':
      if (!userId) return false;
      io.to(`portfolio:${userId}`).emit('portfolio:updated', { userId, portfolio: ev.portfolio || {}, timestamp });
      return true;
    case 'position.closed':
      if (!userId) return false;
      io.to(`portfolio:${userId}`).emit('position:closed', { userId, position: ev.position || {}, timestamp });
      return true;
    case 'quote.updated':
      if (!ev.quote || typeof ev.quote.symbol !== 'string') return false;
      io.to(`watchlist:${ev.quote.symbol}`).emit('quote:update', ev.quote);
      return true;
    default:
      return false;
  }
}

function makeHandler(io) {
  return async (req, res) => {
    const url = req.url.split('?')[0];
    if (req.method === 'GET' && url === '/health') return sendJSON(res, 200, { status: 'ok' });
    if (req.method === 'GET' && url === '/debug/vars') {
      const m = process.memoryUsage();
      return sendJSON(res, 200, {
        node: { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external,
          arrayBuffers: m.arrayBuffers },
        sockets: io.of('/').sockets.size,
        engineClients: io.engine.clientsCount,
      });
    }
    if (url !== '/api/v1/emit' && url !== '/api/v1/events') return; // socket.io or 404 below
    if (req.method !== 'POST') return sendJSON(res, 405, { success: false, code: 'METHOD_NOT_ALLOWED' });
    if (!authorized(req)) return sendJSON(res, 401, { success: false, code: 'UNAUTHORIZED', message: 'missing or bad API key' });
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      return sendJSON(res, err.status || 400, { success: false, code: 'BAD_REQUEST', message: err.message });
    }
    const list = Array.isArray(body) ? body : [body];
    let accepted = 0;
    if (url === '/api/v1/emit') {
      if (!list.every(validEmit)) return sendJSON(res, 400, { success: false, code: 'BAD_REQUEST', message: 'each message needs rooms[] (empty: every socket) and event' });
      for (const m of list) {
        (m.rooms.length > 0 ? io.to(m.rooms) : io).emit(m.event, m.data); // no rooms: every socket
        accepted++;
      }
    } else {
      for (const ev of list) if (domainEmit(io, ev)) accepted++;
      if (accepted !== list.length) return sendJSON(res, 400, { success: false, code: 'BAD_REQUEST', accepted, message: 'unknown or invalid event' });
    }
    sendJSON(res, 200, { success: true, accepted });
  };
}

// ---- socket.io server ------------------------------------------------------------

async function main() {
  const redis = createClient({ url: REDIS_URL });
  redis.on('error', (err) => log('redis error', { err: err.message }));
  await redis.connect();

  const httpServer = http.createServer();
  const io = new Server(httpServer, { serveClient: false, pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT });
  const handler = makeHandler(io);
  httpServer.on('request', (req, res) => {
    handler(req, res).then(() => {
      if (!res.headersSent && !req.url.startsWith('/socket.io/')) sendJSON(res, 404, { success: false, code: 'NOT_FOUND' });
    }, (err) => {
      log('http error', { err: err.message });
      if (!res.headersSent) sendJSON(res, 500, { success: false, code: 'INTERNAL' });
    });
  });

  if (ADAPTER === 'redis') {
    const { createAdapter } = require('@socket.io/redis-adapter');
    const pub = createClient({ url: REDIS_URL });
    const sub = pub.duplicate();
    pub.on('error', (err) => log('redis pub error', { err: err.message }));
    sub.on('error', (err) => log('redis sub error', { err: err.message }));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }

  const limiter = new RateLimiter(RATE_LIMIT, redis);

  // Rate limit middleware: connections per minute per IP.
  io.use(async (socket, next) => {
    if (await limiter.allow(`conn:${socket.handshake.address}`, CONN_PER_MIN)) return next();
    const err = new Error('Too many connections');
    err.data = { code: 'RATE_LIMIT' };
    next(err);
  });

  // Auth middleware: signed connect.sid cookie (or auth.sessionID) -> sess:<sid> -> passport.user.
  io.use(async (socket, next) => {
    const fail = (code, message) => {
      const err = new Error(message);
      err.data = { code };
      next(err);
    };
    let sid = sessionIdFromCookie(socket.handshake.headers.cookie);
    if (!sid && socket.handshake.auth && typeof socket.handshake.auth.sessionID === 'string') {
      sid = socket.handshake.auth.sessionID;
    }
    if (!sid) return fail('NO_SESSION', 'Authentication required');
    let raw;
    try {
      raw = await redis.get(SESSION_PREFIX + sid);
    } catch (err) {
      return fail('SESSION_STORE_UNAVAILABLE', 'Session store unavailable');
    }
    if (!raw) return fail('SESSION_NOT_FOUND', 'Session not found or expired');
    let sess;
    try {
      sess = JSON.parse(raw);
    } catch (err) {
      return fail('SESSION_INVALID', 'Session invalid');
    }
    const exp = sess.cookie && sess.cookie.expires;
    if (exp && new Date(exp).getTime() <= Date.now()) return fail('SESSION_EXPIRED', 'Session expired');
    const user = sess.passport && sess.passport.user;
    if (user == null || user === '') return fail('UNAUTHORIZED', 'Not logged in');
    const userId = typeof user === 'object' ? String(user.id || user._id) : String(user);
    socket.data.userId = userId;
    socket.data.subscriptions = 0;
    socket.handshake.auth = { ...(socket.handshake.auth || {}), userId, authenticated: true };
    next();
  });

  io.on('connection', (socket) => {
    const userId = socket.data.userId;
    socket.join(`user:${userId}`);

    const guard = async (event, ack) => {
      if (!(await limiter.allow(`event:${userId}`, EVENTS_PER_MIN))) {
        const e = { success: false, code: 'RATE_LIMIT', message: 'Too many events' };
        socket.emit('error', e);
        if (typeof ack === 'function') ack(e);
        return false;
      }
      return true;
    };
    const reply = (event, ack, payload) => {
      socket.emit(event, payload);
      if (typeof ack === 'function') ack(payload);
    };

    socket.on('subscribe:portfolio', async (data, ack) => {
      if (typeof data === 'function') { ack = data; data = undefined; }
      if (!(await guard('subscribe:portfolio', ack))) return;
      socket.join(`portfolio:${userId}`);
      socket.data.subscriptions++;
      reply('subscribed:portfolio', ack, { success: true });
    });

    socket.on('subscribe:trades', async (data, ack) => {
      if (typeof data === 'function') { ack = data; data = undefined; }
      if (!(await guard('subscribe:trades', ack))) return;
      socket.join(`trades:${userId}`);
      socket.data.subscriptions++;
      reply('subscribed:trades', ack, { success: true });
    });

    socket.on('subscribe:watchlist', async (data, ack) => {
      if (typeof data === 'function') { ack = data; data = undefined; }
      if (!(await guard('subscribe:watchlist', ack))) return;
      const symbols = data && Array.isArray(data.symbols) ? data.symbols : null;
      if (!symbols || symbols.length === 0 || symbols.length > MAX_SYMBOLS ||
          !symbols.every((s) => typeof s === 'string' && SYMBOL_RE.test(s))) {
        const e = { success: false, code: 'INVALID_SYMBOLS', message: `symbols must be 1-${MAX_SYMBOLS} ticker strings` };
        socket.emit('error', e);
        if (typeof ack === 'function') ack(e);
        return;
      }
      socket.join(symbols.map((s) => `watchlist:${s}`));
      socket.data.subscriptions += symbols.length;
      reply('subscribed:watchlist', ack, { success: true, symbols });
    });

    socket.on('unsubscribe:watchlist', async (data, ack) => {
      if (typeof data === 'function') { ack = data; data = undefined; }
      const symbols = data && Array.isArray(data.symbols) ? data.symbols : [];
      for (const s of symbols) if (typeof s === 'string') socket.leave(`watchlist:${s}`);
      reply('unsubscribed:watchlist', ack, { success: true, symbols });
    });

    socket.on('ping', (ack) => {
      const payload = { timestamp: Date.now() };
      if (typeof ack === 'function') ack(payload); else socket.emit('pong', payload);
    });
  });

  httpServer.listen(PORT, HOST, () => log('listening', { addr: `${HOST}:${PORT}`, adapter: ADAPTER, rateLimit: RATE_LIMIT, pid: process.pid }));

  const shutdown = () => {
    io.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err) => {
  log('fatal', { err: err.stack || String(err) });
  process.exit(1);
});
