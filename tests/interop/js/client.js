'use strict';
/*
 * A real NestJS ClientTCP driven by JSON lines, for sansio-tcpmsg interop tests.
 * Works with @nestjs/microservices 10.4.x, 11.x and 12.1.x (NODE_PATH).
 *
 * Env: HOST (default 127.0.0.1), PORT, TLS_CA / TLS_CERT / TLS_KEY (PEM paths;
 *      servername "localhost"), ENVELOPE (any value: a custom serializer pair,
 *      every packet wrapped as {"v": 1, "packet": ...}).
 *
 * stdin, one JSON object per line:
 *   {"tag": T, "op": "send", "pattern": P, "data": D, "metadata": M?}
 *       -> {"tag": T, "values": [...]}            on completion
 *       -> {"tag": T, "error": E, "values": [...]} when the observable errors
 *   {"tag": T, "op": "emit", "pattern": P, "data": D, "metadata": M?}
 *       -> {"tag": T, "done": true}  (or {"tag": T, "error": E})
 *   {"tag": T, "op": "close"}    -> {"tag": T, "done": true}
 *   {"tag": T, "op": "connect"}  -> {"tag": T, "done": true}
 * Errors that are Error instances (e.g. "Connection closed") are written as
 * {"$error": name, "message": msg}; anything else is written as is.
 * "metadata" is attached through ClientProxy#setOnDispatchHook (12.x only;
 * ignored on 10.x/11.x, which have no such hook).
 * stdout: "READY" once connected, then JSON lines. Exits when stdin closes.
 */
require('reflect-metadata');
const fs = require('fs');
const readline = require('readline');
const { ClientTCP } = require('@nestjs/microservices');

const options = {
  host: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 3000),
};
if (process.env.TLS_CA || process.env.TLS_CERT) {
  const tlsOptions = { servername: 'localhost' };
  if (process.env.TLS_CA) tlsOptions.ca = fs.readFileSync(process.env.TLS_CA);
  if (process.env.TLS_CERT) tlsOptions.cert = fs.readFileSync(process.env.TLS_CERT);
  if (process.env.TLS_KEY) tlsOptions.key = fs.readFileSync(process.env.TLS_KEY);
  options.tlsOptions = tlsOptions;
}

if (process.env.ENVELOPE) {
  // a custom serializer pair, as js/server.js's ENVELOPE: {"v": 1, "packet": ...}
  options.serializer = { serialize: packet => ({ v: 1, packet }) };
  options.deserializer = {
    deserialize: value => {
      if (!value || value.v !== 1) throw new Error(`not an envelope: ${JSON.stringify(value)}`);
      return value.packet;
    },
  };
}
const client = new ClientTCP(options);
const HAS_HOOK = typeof client.setOnDispatchHook === 'function';

// ClientProxy#createPacket runs the dispatch hook once per send/emit, after
// the (async) connect step. Every send/emit goes through the same number of
// promise hops, so packets are created in call order: a FIFO of the metadata
// requested for each call (undefined when none) lines up with the hook calls.
const metaQueue = [];
if (HAS_HOOK) {
  client.setOnDispatchHook(packet => {
    const entry = metaQueue.shift();
    if (!entry) return;
    if (entry.data !== packet.data) {
      process.stderr.write('client.js: dispatch hook order mismatch\n');
    }
    if (entry.metadata !== undefined) packet.metadata = entry.metadata;
  });
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errValue(err) {
  if (err instanceof Error) return { $error: err.name, message: err.message };
  return err === undefined ? null : err;
}

function doSend(cmd) {
  const values = [];
  if (HAS_HOOK) metaQueue.push({ data: cmd.data, metadata: cmd.metadata });
  let obs;
  try {
    obs = client.send(cmd.pattern, cmd.data);
  } catch (e) {
    if (HAS_HOOK) metaQueue.pop();
    return out({ tag: cmd.tag, error: errValue(e), values });
  }
  obs.subscribe({
    next: v => values.push(v === undefined ? null : v),
    error: e => out({ tag: cmd.tag, error: errValue(e), values }),
    complete: () => out({ tag: cmd.tag, values }),
  });
}

function doEmit(cmd) {
  if (HAS_HOOK) metaQueue.push({ data: cmd.data, metadata: cmd.metadata });
  client.emit(cmd.pattern, cmd.data).subscribe({
    error: e => out({ tag: cmd.tag, error: errValue(e) }),
    complete: () => out({ tag: cmd.tag, done: true }),
  });
}

function handle(line) {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    return out({ tag: null, error: { $error: 'BadCommand', message: String(e) } });
  }
  switch (cmd.op) {
    case 'send':
      return doSend(cmd);
    case 'emit':
      return doEmit(cmd);
    case 'close':
      client.close();
      return out({ tag: cmd.tag, done: true });
    case 'connect':
      return client.connect().then(
        () => out({ tag: cmd.tag, done: true }),
        e => out({ tag: cmd.tag, error: errValue(e) }),
      );
    default:
      return out({ tag: cmd.tag, error: { $error: 'BadCommand', message: `unknown op ${cmd.op}` } });
  }
}

process.on('unhandledRejection', err => {
  process.stderr.write(`unhandledRejection: ${(err && err.stack) || JSON.stringify(err)}\n`);
});

client
  .connect()
  .then(() => {
    process.stdout.write('READY\n');
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', handle);
    rl.on('close', () => {
      try {
        client.close();
      } finally {
        // let pending stdout writes flush
        setImmediate(() => process.exit(0));
      }
    });
  })
  .catch(err => {
    process.stderr.write(`client.js: connect failed: ${(err && err.stack) || err}\n`);
    process.exit(1);
  });
