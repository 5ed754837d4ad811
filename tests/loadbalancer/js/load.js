'use strict';
/*
 * Steady, bounded load from real NestJS ClientTCP clients, for the HAProxy tests.
 * LANES clients (one connection each, so the balancer spreads them), each sending
 * "work" calls one after another with PAUSE ms between them, for DURATION ms.
 * Env: HOST, PORT, LANES, PAUSE, DURATION; NODE_PATH finds @nestjs/microservices.
 * stdout: "READY" once every lane has made a first call, then one JSON line per call:
 *   {"lane", "i", "t" (when it started, ms since the epoch), "ok": true, "reply", "local" (our port)}
 *   {"lane", "i", "t", "ok": false, "error"}
 * and "DONE" at the end.
 */
require('reflect-metadata');
const { ClientTCP } = require('@nestjs/microservices');
const { lastValueFrom } = require('rxjs');

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT);
const lanes = Number(process.env.LANES || 4);
const pause = Number(process.env.PAUSE || 20);
const duration = Number(process.env.DURATION || 10000);
const start = Date.now();
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n');
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function lane(n, ready) {
  const client = new ClientTCP({ host, port });
  let first = true;
  for (let i = 0; Date.now() - start < duration; i++) {
    const t = Date.now();
    try {
      const reply = await lastValueFrom(client.send('work', { lane: n, i }));
      const local = client.socket && client.socket.netSocket ? client.socket.netSocket.localPort : null;
      out({ lane: n, i, t, ok: true, reply, local });
    } catch (err) {
      out({ lane: n, i, t, ok: false, error: err && err.message ? err.message : String(err) });
    }
    if (first) {
      first = false;
      ready();
    }
    await sleep(pause);
  }
  client.close();
}

async function main() {
  let left = lanes;
  let signal;
  const allReady = new Promise(resolve => { signal = resolve; });
  const ready = () => { if (--left === 0) signal(); };
  const running = [];
  for (let n = 0; n < lanes; n++) running.push(lane(n, ready));
  await allReady;
  process.stdout.write('READY\n');
  await Promise.all(running);
  process.stdout.write('DONE\n');
}

main().catch(err => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
