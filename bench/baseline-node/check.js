'use strict';
// check.js: end-to-end check of the baseline with the official socket.io-client.
// Seeds one connect-redis session, connects with the signed cookie, subscribes,
// publishes a quote and a trade through the HTTP API and waits for both.
// Usage: REDIS_URL=... URL=http://127.0.0.1:PORT SESSION_SECRETS=... API_KEYS=... node check.js
const crypto = require('crypto');
const { createClient } = require('redis');
const { io } = require('socket.io-client');
const signature = require('cookie-signature');

const URL = process.env.URL || 'http://127.0.0.1:3000';
const secret = (process.env.SESSION_SECRETS || 'keyboard cat').split(',')[0];
const key = (process.env.API_KEYS || 'bench-api-key-0123456789').split(',')[0];

async function post(path, body) {
  const r = await fetch(URL + path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + key }, body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
}

(async () => {
  const redis = createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' });
  await redis.connect();
  const sid = crypto.randomBytes(24).toString('base64url');
  await redis.set('sess:' + sid, JSON.stringify({ cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, passport: { user: 'check-user' } }), { EX: 60 });
  const cookie = 'connect.sid=' + encodeURIComponent('s:' + signature.sign(sid, secret));
  const bad = io(URL, { transports: ['websocket'], extraHeaders: { cookie: 'connect.sid=s%3Anope.bad' }, reconnection: false });
  const badErr = await new Promise((res) => bad.on('connect_error', res));
  if (!badErr.data || badErr.data.code !== 'NO_SESSION') throw new Error('expected NO_SESSION, got ' + JSON.stringify(badErr.data));
  const s = io(URL, { transports: ['websocket'], extraHeaders: { cookie }, reconnection: false });
  await new Promise((res, rej) => { s.on('connect', res); s.on('connect_error', rej); });
  const acks = await Promise.all([
    s.emitWithAck('subscribe:portfolio'),
    s.emitWithAck('subscribe:trades'),
    s.emitWithAck('subscribe:watchlist', { symbols: ['AAPL', 'MSFT', 'TSLA'] }),
  ]);
  if (!acks.every((a) => a.success)) throw new Error('acks ' + JSON.stringify(acks));
  const got = new Promise((res) => { let n = 0; const done = () => { if (++n === 2) res(); };
    s.on('quote:update', (q) => { if (q.symbol === 'MSFT') done(); });
    s.on('trade:executed', (t) => { if (t.trade.id === 't1' && t.notification.message === 'BUY 3 AAPL @ $1.5') done(); }); });
  await post('/api/v1/emit', [{ rooms: ['watchlist:MSFT'], event: 'quote:update', data: { symbol: 'MSFT', price: 1, ts: Date.now() * 1e6 } }]);
  await post('/api/v1/events', { type: 'trade.executed', userId: 'check-user', trade: { id: 't1', symbol: 'AAPL', side: 'buy', quantity: 3, price: 1.5 } });
  await Promise.race([got, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout waiting for events')), 3000))]);
  s.close(); bad.close(); await redis.quit();
  console.log('baseline check ok');
})().catch((e) => { console.error('baseline check FAILED:', e); process.exit(1); });
