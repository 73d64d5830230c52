// Worker for the official phoenix.js client (npm "phoenix") under node, with
// "ws" as its WebSocket. Same line protocol as benchmarks/clients/common.py:
// prints {"hello": ...}, then reads {"op", "args"} lines from stdin and
// answers each with one JSON line ({"ready": true} first for "dispatch").
// CPU is process.cpuUsage() (user + system, every thread of this process).
// Run with --expose-gc so pending_memory can settle the heap.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Socket } from "phoenix";
import WebSocket from "ws";

const TEXT = "hello, phoenix";
const SETUP_TIMEOUT_MS = 120000;

const payload = (i) => ({ seq: i, text: TEXT });
const payloads = (count) => Array.from({ length: count }, (_, i) => payload(i));
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function clock() {
  const cpu = process.cpuUsage();
  const wall = process.hrtime.bigint();
  return () => {
    const used = process.cpuUsage(cpu);
    return {
      cpu_s: (used.user + used.system) / 1e6,
      wall_s: Number(process.hrtime.bigint() - wall) / 1e9,
    };
  };
}

function connect(url) {
  const socket = new Socket(url, { transport: WebSocket, timeout: SETUP_TIMEOUT_MS });
  return new Promise((resolve, reject) => {
    socket.onOpen(() => resolve(socket));
    socket.onError((err) => reject(new Error(`cannot connect: ${err?.message ?? err}`)));
    socket.connect();
  });
}

function join(channel) {
  return new Promise((resolve, reject) => {
    channel
      .join()
      .receive("ok", resolve)
      .receive("error", (r) => reject(new Error(`join refused: ${JSON.stringify(r)}`)))
      .receive("timeout", () => reject(new Error("join timed out")));
  });
}

// The promise wrapper every phoenix.js user writes around a push.
function reply(push) {
  return new Promise((resolve, reject) => {
    push
      .receive("ok", resolve)
      .receive("error", (r) => reject(new Error(JSON.stringify(r))))
      .receive("timeout", () => reject(new Error("push timed out")));
  });
}

async function joined(url, topic) {
  const socket = await connect(url);
  const channel = socket.channel(topic, {});
  await join(channel);
  return [socket, channel];
}

function disconnect(socket) {
  return new Promise((resolve) => socket.disconnect(resolve));
}

async function round_trips({ url, topic, count, warmup }) {
  const [socket, channel] = await joined(url, topic);
  const data = payloads(warmup + count);
  for (const item of data.slice(0, warmup)) await reply(channel.push("echo", item));
  const stop = clock();
  let last;
  for (const item of data.slice(warmup)) last = await reply(channel.push("echo", item));
  const result = stop();
  await disconnect(socket);
  if (last.seq !== data[data.length - 1].seq) throw new Error("wrong reply");
  return { ...result, n: count };
}

async function pipelined({ url, topic, count, warmup }) {
  const [socket, channel] = await joined(url, topic);
  await Promise.all(payloads(warmup).map((p) => reply(channel.push("echo", p))));
  const data = payloads(count);
  const stop = clock();
  const replies = await Promise.all(data.map((p) => reply(channel.push("echo", p))));
  const result = stop();
  await disconnect(socket);
  if (replies.length !== count) throw new Error("missing replies");
  return { ...result, n: count };
}

async function dispatch({ url, topic, channels, messages, warmup }) {
  const socket = await connect(url);
  const target = socket.channel(topic, {});
  const idle = Array.from({ length: channels - 1 }, (_, i) =>
    socket.channel(`${topic}-idle-${i}`, {}),
  );
  let seen = 0;
  let done;
  let stop;
  const finished = new Promise((resolve) => (done = resolve));
  target.on("broadcasted", () => {
    seen += 1;
    if (seen === warmup) stop = clock();
    else if (seen === warmup + messages) done();
  });
  await Promise.all([target, ...idle].map(join));
  emit({ ready: true });
  if (warmup === 0) stop = clock();
  await finished;
  const result = stop();
  await disconnect(socket);
  return { ...result, n: messages, channels };
}

async function pending_memory({ url, topic, count }) {
  const [socket, channel] = await joined(url, topic);
  const data = payloads(count);
  global.gc();
  const base = process.memoryUsage().heapUsed;
  const pushes = data.map((p) => channel.push("noreply", p, SETUP_TIMEOUT_MS));
  await reply(channel.push("echo", {}));
  global.gc();
  const grown = process.memoryUsage().heapUsed - base;
  await disconnect(socket);
  return {
    bytes: grown,
    n: pushes.length,
    pending: pushes.filter((p) => p.sent && !p.receivedResp).length,
    payload_bytes: JSON.stringify(data[0]).length,
  };
}

const scenarios = { round_trips, pipelined, dispatch, pending_memory };

async function main() {
  const pkg = (name) => {
    const file = new URL(`./node_modules/${name}/package.json`, import.meta.url);
    return JSON.parse(readFileSync(file, "utf8")).version;
  };
  emit({
    hello: "phoenix.js",
    versions: { phoenix: pkg("phoenix"), ws: pkg("ws"), node: process.versions.node },
    pid: process.pid,
  });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const { op, args } = JSON.parse(line);
    if (op === "exit") break;
    let result;
    try {
      result = await scenarios[op](args ?? {});
    } catch (err) {
      result = { error: String(err?.stack ?? err) };
    }
    emit(result);
  }
  process.exit(0);
}

main();
