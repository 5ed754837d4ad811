'use strict';
/*
 * A minimal NestJS TCP microservice for the benchmarks, with the handlers of
 * bench/server.py: `echo` (returns its data), the event `tick` (counts), `ticks`
 * (returns how many `tick` events were handled so far) and `items` (streams
 * data.item data.n times, as an Observable). NODE_PATH must point at a NestJS
 * node_modules (bench/run.py uses tests/interop/nest.py's ensure_installed(12)).
 * Env: HOST (127.0.0.1), PORT (0), TLS_CERT and TLS_KEY (PEM paths: serve TLS).
 * stdout: one line "LISTENING <port>". Stops on SIGTERM.
 */
require('reflect-metadata');
const fs = require('fs');
const { Module, Controller } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { MessagePattern, EventPattern, ServerTCP } = require('@nestjs/microservices');
const { Observable } = require('rxjs');

let ticks = 0;

class BenchController {
  echo(data) {
    return data;
  }
  tick() {
    ticks++;
  }
  ticks() {
    return ticks;
  }
  items(data) {
    return new Observable(sub => {
      for (let i = 0; i < data.n; i++) sub.next(data.item);
      sub.complete();
    });
  }
}
const P = BenchController.prototype;
function decorate(name, decorator) {
  const desc = Object.getOwnPropertyDescriptor(P, name);
  Object.defineProperty(P, name, Reflect.decorate([decorator], P, name, desc) || desc);
}
decorate('echo', MessagePattern('echo'));
decorate('tick', EventPattern('tick'));
decorate('ticks', MessagePattern('ticks'));
decorate('items', MessagePattern('items'));
Reflect.decorate([Controller()], BenchController);

class AppModule {}
Reflect.decorate([Module({ controllers: [BenchController] })], AppModule);

async function main() {
  const options = { host: process.env.HOST || '127.0.0.1', port: Number(process.env.PORT || 0) };
  if (process.env.TLS_CERT) {
    options.tlsOptions = {
      cert: fs.readFileSync(process.env.TLS_CERT),
      key: fs.readFileSync(process.env.TLS_KEY || process.env.TLS_CERT),
    };
  }
  const server = new ServerTCP(options);
  server.port = options.port; // 10.x turns 0 into 3000
  const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: ['error', 'warn'] });
  await app.listen();
  const net = typeof server.unwrap === 'function' ? server.unwrap() : server.server;
  process.stdout.write(`LISTENING ${net.address().port}\n`);
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  process.stderr.write(`bench server.js failed: ${(err && err.stack) || err}\n`);
  process.exit(1);
});
