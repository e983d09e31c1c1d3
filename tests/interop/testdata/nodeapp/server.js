'use strict';
// Express + express-session + passport app used by tradewire's Go interop
// test (tests/interop). It logs users in over HTTP and stores sessions with
// connect-mongo or connect-redis exactly as the platform's Node backend does.
//
// Environment:
//   STORE         "mongo" (default) or "redis"
//   MONGO_URL     mongodb://host:port/db   (STORE=mongo)
//   STRINGIFY     "false" stores the session as an embedded document
//   REDIS_URL     redis://host:port        (STORE=redis)
//   SECRETS       JSON array of secrets; the first one signs
//   USERS         JSON array of {username, password, id}
//   SERIALIZE     "string" (default): passport.user = id; "object": {_id: id}
//   MAX_AGE_MS    cookie maxAge in ms (optional)
//   ROLLING       "true": express-session's rolling option (Set-Cookie on
//                 every response, so the browser's cookie follows the store)
// POST /login {username, password[, maxAgeMs]}, POST /logout, GET /me.
// It prints "listening <port>" once ready.

const express = require('express');
const session = require('express-session');
const passport = require('passport');
const LocalStrategy = require('passport-local').Strategy;

const users = JSON.parse(process.env.USERS || '[]');
const secrets = JSON.parse(process.env.SECRETS || '["interop-secret"]');

async function makeStore() {
  if ((process.env.STORE || 'mongo') === 'redis') {
    const { createClient } = require('redis');
    const RedisStore = require('connect-redis').default;
    const client = createClient({ url: process.env.REDIS_URL });
    // Without a listener node-redis's 'error' (e.g. Redis restarting) would
    // crash the app; it reconnects by itself.
    client.on('error', (err) => console.error(`redis: ${err.message}`));
    await client.connect();
    return new RedisStore({ client });
  }
  const MongoStore = require('connect-mongo').default || require('connect-mongo');
  return MongoStore.create({
    mongoUrl: process.env.MONGO_URL,
    // FerretDB has no TTL indexes: the default 'native' would break every call.
    autoRemove: 'interval',
    stringify: process.env.STRINGIFY !== 'false',
  });
}

passport.use(new LocalStrategy((username, password, done) => {
  const u = users.find((x) => x.username === username && x.password === password);
  return done(null, u || false);
}));
passport.serializeUser((u, done) => {
  done(null, process.env.SERIALIZE === 'object' ? { _id: u.id } : u.id);
});
passport.deserializeUser((id, done) => {
  const key = typeof id === 'object' ? id._id : id;
  done(null, users.find((x) => x.id === key) || false);
});

async function main() {
  const app = express();
  app.use(express.json());
  app.use(session({
    store: await makeStore(),
    secret: secrets,
    resave: false,
    saveUninitialized: false,
    rolling: process.env.ROLLING === 'true',
    cookie: process.env.MAX_AGE_MS ? { maxAge: Number(process.env.MAX_AGE_MS) } : {},
  }));
  app.use(passport.session());

  // An optional body field maxAgeMs gives this session its own cookie
  // maxAge (a "remember me for" choice), so a test can make one expire soon.
  app.post('/login', passport.authenticate('local', { failWithError: true }),
    (req, res) => {
      if (Number.isFinite(req.body.maxAgeMs)) req.session.cookie.maxAge = req.body.maxAgeMs;
      res.json({ ok: true, user: req.user.id });
    },
    (err, req, res, next) => res.status(401).json({ ok: false }));
  app.post('/logout', (req, res, next) => {
    req.logout((err) => (err ? next(err) : res.json({ ok: true })));
  });
  app.get('/me', (req, res) => {
    if (!req.user) return res.status(401).json({ ok: false });
    return res.json({ ok: true, user: req.user.id });
  });

  const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    console.log(`listening ${server.address().port}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Exit with the Go test binary: it holds our stdin open.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
