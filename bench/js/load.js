'use strict';
/*
 * Load driver: NestJS's real ClientTCP keeping C requests in flight on one
 * connection for D seconds. NODE_PATH must point at NestJS 12's node_modules.
 *
 * Env: HOST (127.0.0.1), PORT.
 * stdout: "READY" once connected; then, for every JSON line on stdin
 *   {"concurrency": C, "payload": "small"|"1k"|"64k", "duration": D, "warmup": W}
 * one JSON line {"count", "rps", "p50_ms", "p99_ms", "errors"} (latencies of the
 * requests completed inside the D-second window that follows W seconds of warm-up).
 * Exits when stdin closes.
 */
require('reflect-metadata');
const readline = require('readline');
const { ClientTCP } = require('@nestjs/microservices');

const client = new ClientTCP({
  host: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 3000),
});

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

function runCell(cmd) {
  const data = payload(cmd.payload);
  const conc = cmd.concurrency;
  const lat = [];
  let errors = 0;
  let recording = false;
  let stopping = false;
  let active = conc;
  return new Promise(resolve => {
    const finish = () =>
      resolve({
        count: lat.length,
        rps: lat.length / cmd.duration,
        p50_ms: percentile(lat.sort((a, b) => a - b), 50),
        p99_ms: percentile(lat, 99),
        errors,
      });
    const one = () => {
      if (stopping) {
        if (--active === 0) finish();
        return;
      }
      const t0 = process.hrtime.bigint();
      client.send('echo', data).subscribe({
        error: () => {
          errors++;
          one();
        },
        complete: () => {
          if (recording) lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
          one();
        },
      });
    };
    setTimeout(() => {
      recording = true;
      setTimeout(() => {
        recording = false;
        stopping = true;
      }, cmd.duration * 1000);
    }, cmd.warmup * 1000);
    for (let i = 0; i < conc; i++) one();
  });
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
      const res = await runCell(queue.shift());
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
