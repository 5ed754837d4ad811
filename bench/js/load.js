'use strict';
/*
 * Load driver: NestJS's real ClientTCP keeping C calls in flight on one connection
 * for D seconds. NODE_PATH must point at NestJS 12's node_modules.
 *
 * Env: HOST (127.0.0.1), PORT, TLS_CA (PEM path: connect with TLS, server name localhost).
 * stdout: "READY" once connected; then, for every JSON line on stdin
 *   {"kind": K, "concurrency": C, "payload": "small"|"1k"|"64k", "duration": D, "warmup": W,
 *    "items": N, "connections": M}
 * one JSON line {"count", "rps", "p50_ms", "p99_ms", "errors"} for the D-second window
 * that follows W seconds of warm-up. Kinds (as bench/load.py):
 *   echo    C callers of send('echo', data); count = replies, latency per call
 *   stream  C callers of send('items', {n: N, item: data}); count = items, latency per stream
 *   emit    C callers each emitting 'tick' 100 times then calling 'ticks' (the server's count
 *           of handled events); count and rps = events handled by the server in the window
 *   conns   M clients of their own, one echo caller each
 * Exits when stdin closes.
 */
require('reflect-metadata');
const fs = require('fs');
const readline = require('readline');
const { ClientTCP } = require('@nestjs/microservices');

const EMIT_BATCH = 100;
const options = { host: process.env.HOST || '127.0.0.1', port: Number(process.env.PORT || 3000) };
if (process.env.TLS_CA) options.tlsOptions = { ca: fs.readFileSync(process.env.TLS_CA), servername: 'localhost' };
const client = new ClientTCP(options);

function payload(name) {
  if (name === 'small') return { n: 1 };
  const size = { '1k': 1024, '64k': 64 * 1024 }[name];
  return { s: 'x'.repeat(size - '{"s":""}'.length) };
}

function percentile(sorted, q) {
  if (!sorted.length) return 0;
  const k = Math.max(0, Math.min(sorted.length - 1, Math.round((q / 100) * sorted.length + 0.5) - 1));
  return sorted[k];
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

function runCell(cmd, clients) {
  const kind = cmd.kind || 'echo';
  const data = payload(cmd.payload);
  const lat = [];
  const marks = []; // emit: [time ms, server count]
  let items = 0;
  let errors = 0;
  let recording = false;
  let stopping = false;
  let active = 0;
  return new Promise(resolve => {
    const finish = () => {
      lat.sort((a, b) => a - b);
      let count = lat.length;
      let rps = count / cmd.duration;
      if (kind === 'stream') {
        count = items;
        rps = items / cmd.duration;
      } else if (kind === 'emit') {
        const ok = marks.length >= 2;
        count = ok ? marks[marks.length - 1][1] - marks[0][1] : 0;
        rps = ok ? count / ((marks[marks.length - 1][0] - marks[0][0]) / 1000) : 0;
      }
      resolve({ count, rps, p50_ms: percentile(lat, 50), p99_ms: percentile(lat, 99), errors });
    };
    const one = cl => {
      if (stopping) {
        if (--active === 0) finish();
        return;
      }
      const t0 = now();
      const error = () => {
        errors++;
        setImmediate(one, cl); // an error may come synchronously: do not recurse
      };
      const complete = () => {
        if (recording) lat.push(now() - t0);
        one(cl);
      };
      if (kind === 'stream') {
        cl.send('items', { n: cmd.items, item: data }).subscribe({
          next: () => {
            if (recording) items++;
          },
          error,
          complete,
        });
      } else if (kind === 'emit') {
        for (let i = 0; i < EMIT_BATCH; i++) cl.emit('tick', data);
        cl.send('ticks', 0).subscribe({
          next: n => {
            if (recording) marks.push([now(), n]);
          },
          error,
          complete,
        });
      } else {
        cl.send('echo', data).subscribe({ error, complete });
      }
    };
    setTimeout(() => {
      recording = true;
      setTimeout(() => {
        recording = false;
        stopping = true;
      }, cmd.duration * 1000);
    }, cmd.warmup * 1000);
    const callers = [];
    if (kind === 'conns') for (const cl of clients) callers.push(cl);
    else for (let i = 0; i < cmd.concurrency; i++) callers.push(clients[0]);
    active = callers.length;
    for (const cl of callers) one(cl);
  });
}

async function cell(cmd) {
  if ((cmd.kind || 'echo') !== 'conns') return runCell(cmd, [client]);
  const many = Array.from({ length: cmd.connections }, () => new ClientTCP(options));
  await Promise.all(many.map(cl => cl.connect()));
  try {
    return await runCell(cmd, many);
  } finally {
    for (const cl of many) cl.close();
  }
}

client
  .connect()
  .then(() => {
    process.stdout.write('READY\n');
    const queue = [];
    let busy = false;
    let closed = false;
    const next = async () => {
      if (busy) return;
      if (!queue.length) {
        if (closed) {
          client.close();
          setImmediate(() => process.exit(0));
        }
        return;
      }
      busy = true;
      const res = await cell(queue.shift());
      process.stdout.write(JSON.stringify(res) + '\n');
      busy = false;
      next();
    };
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', line => {
      if (!line.trim()) return;
      queue.push(JSON.parse(line));
      next();
    });
    rl.on('close', () => {
      closed = true;
      next();
    });
  })
  .catch(err => {
    process.stderr.write(`load.js: connect failed: ${(err && err.stack) || err}\n`);
    process.exit(1);
  });
