// Conformance driver for the official phoenix.js client (npm `phoenix`, pinned
// in package.json), with `ws` as its WebSocket.
//
// It speaks JSON lines with the Python harness (harness.py):
//   stdin   {"id": N, "ops": [op, ...]}   run the ops, in order, in one tick
//           {"id": N, "end": true}        exit
//   stdout  {"ack": N} or {"ack": N, "error": "..."}
//           {"outcome": {...}}            a callback fired
//
// Ops (times in ms, as phoenix.js takes them; ids are the scenario's names):
//   socket {id, url, opts}     new Socket; opts: timeout, heartbeatIntervalMs,
//                              reconnectAfterMs / rejoinAfterMs (lists of ms),
//                              params | params_seq, vsn, transport ("longpoll"),
//                              close_code (false: close outcomes without code)
//   connect {socket}           disconnect {socket, report?}
//   channel {socket, id, topic, params | params_seq, on: [event...]}
//   join {chan, push, timeout?}          leave {chan, push, timeout?}
//   push {chan, push, event, payload, timeout?, statuses?}
//   resend {push, timeout}     receive {push, status, tag}
//   on {chan, id, event}       off {chan, event, id?}
//   presence {chan, id}
//   any op + {catch: ID, s}    report whether it threw instead of failing
// Outcomes: socket {s, cb: open | close (code) | error (established) |
// disconnected}; channel {s, c, cb: error | close, payload}, {s, c, on, payload};
// push {s, p, status, payload}; presence {s, pr, cb: join | leave | sync, ...}.
// A payload {"$bytes": hex} is an ArrayBuffer, both ways.
//
// py_driver.py interprets the same ops with phoenix_channels; both drivers
// must stay op-for-op alike, including the order in which they register
// callbacks (callback registration consumes socket refs in both clients).

import {createInterface} from "node:readline"
import {LongPoll, Presence, Socket} from "phoenix"
import WebSocket from "ws"

const sockets = new Map()
const channels = new Map() // id -> {channel, socket: socketId}
const pushes = new Map() // id -> {push, socket: socketId}
const presences = new Map()
const bindings = new Map() // binding id -> the ref channel.on returned

function emit(line){ process.stdout.write(JSON.stringify(line) + "\n") }

function outcome(fields){ emit({outcome: fields}) }

// Payloads as JSON: an ArrayBuffer becomes {"$bytes": hex}, undefined null.
function plain(value){
  if(value === undefined){ return null }
  if(value instanceof ArrayBuffer){
    return {$bytes: Buffer.from(value).toString("hex")}
  }
  if(Array.isArray(value)){ return value.map(plain) }
  if(value !== null && typeof value === "object"){
    const out = {}
    for(const key of Object.keys(value)){ out[key] = plain(value[key]) }
    return out
  }
  return value
}

// A payload from a scenario: {"$bytes": hex} becomes an ArrayBuffer.
function wire(value){
  if(value && typeof value === "object" && typeof value.$bytes === "string"){
    const buf = Buffer.from(value.$bytes, "hex")
    return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
  }
  return value
}

// A backoff given as a list of ms: tries -> list[tries - 1], the last one after.
function schedule(list){
  return tries => list[Math.min(tries, list.length) - 1]
}

// Params given as a list are handed out one per evaluation, the last one repeating.
function paramsOf(op){
  if(op.params_seq){
    let calls = 0
    return () => op.params_seq[Math.min(calls++, op.params_seq.length - 1)]
  }
  return op.params || {}
}

// vsn 1.0.0 JSON objects (PROTOCOL §6.2): phoenix.js only speaks the 2.0.0
// array format, so a 1.0.0 client needs its own encode/decode, as the
// Socket options allow. Written from PROTOCOL §6.2, not from any client.
const v1 = {
  encode(msg, callback){
    const frame = {topic: msg.topic, event: msg.event, payload: msg.payload, ref: msg.ref}
    if(msg.join_ref !== undefined && msg.join_ref !== null){ frame.join_ref = msg.join_ref }
    return callback(JSON.stringify(frame))
  },
  decode(raw, callback){
    const {topic, event, payload, ref, join_ref} = JSON.parse(raw)
    return callback({join_ref: join_ref === undefined ? null : join_ref, ref, topic, event, payload})
  }
}

function makeSocket(op){
  const o = op.opts || {}
  const opts = {}
  if(o.timeout !== undefined){ opts.timeout = o.timeout }
  if(o.heartbeatIntervalMs !== undefined){ opts.heartbeatIntervalMs = o.heartbeatIntervalMs }
  if(o.reconnectAfterMs){ opts.reconnectAfterMs = schedule(o.reconnectAfterMs) }
  if(o.rejoinAfterMs){ opts.rejoinAfterMs = schedule(o.rejoinAfterMs) }
  if(o.params_seq){ opts.params = paramsOf({params_seq: o.params_seq}) }
  if(o.params){ opts.params = o.params }
  if(o.vsn){ opts.vsn = o.vsn }
  if(o.vsn === "1.0.0"){
    opts.encode = v1.encode
    opts.decode = v1.decode
  }
  opts.transport = o.transport === "longpoll" ? LongPoll : WebSocket
  const socket = new Socket(op.url, opts)
  const s = op.id
  socket.onOpen(() => outcome({s, cb: "open"}))
  // close_code: false leaves the code out (for scenarios about something else)
  socket.onClose(event => outcome(o.close_code === false ? {s, cb: "close"} : {s, cb: "close", code: event.code}))
  socket.onError((_error, _transport, established) => outcome({s, cb: "error", established}))
  sockets.set(s, socket)
}

function hookPush(id, socketId, push, statuses){
  pushes.set(id, {push, socket: socketId})
  for(const status of statuses){
    push.receive(status, response => outcome({s: socketId, p: id, status, payload: plain(response)}))
  }
}

const DEFAULT_STATUSES = ["ok", "error", "timeout"]

function presenceMetas(presence){
  return presence ? plain(presence.metas) : null
}

const OPS = {
  socket: makeSocket,
  connect(op){ sockets.get(op.socket).connect() },
  disconnect(op){
    const s = op.socket
    // report: false leaves out the "disconnected" outcome
    sockets.get(s).disconnect(() => { if(op.report !== false){ outcome({s, cb: "disconnected"}) } })
  },
  channel(op){
    const socket = sockets.get(op.socket)
    const s = op.socket
    const c = op.id
    const channel = socket.channel(op.topic, paramsOf(op))
    channel.onError(reason => outcome({s, c, cb: "error", payload: plain(reason)}))
    channel.onClose(payload => outcome({s, c, cb: "close", payload: plain(payload)}))
    for(const event of op.on || []){
      channel.on(event, payload => outcome({s, c, on: event, payload: plain(payload)}))
    }
    channels.set(c, {channel, socket: s})
  },
  join(op){
    const {channel, socket} = channels.get(op.chan)
    const push = op.timeout === undefined ? channel.join() : channel.join(op.timeout)
    hookPush(op.push, socket, push, op.statuses || DEFAULT_STATUSES)
  },
  push(op){
    const {channel, socket} = channels.get(op.chan)
    const payload = wire(op.payload)
    const push = op.timeout === undefined
      ? channel.push(op.event, payload)
      : channel.push(op.event, payload, op.timeout)
    hookPush(op.push, socket, push, op.statuses || DEFAULT_STATUSES)
  },
  leave(op){
    const {channel, socket} = channels.get(op.chan)
    const push = op.timeout === undefined ? channel.leave() : channel.leave(op.timeout)
    hookPush(op.push, socket, push, op.statuses || DEFAULT_STATUSES)
  },
  on(op){
    const {channel, socket: s} = channels.get(op.chan)
    const c = op.chan
    bindings.set(op.id, channel.on(op.event, payload => {
      outcome({s, c, on: op.event, tag: op.id, payload: plain(payload)})
    }))
  },
  off(op){
    const {channel} = channels.get(op.chan)
    if(op.id === undefined){ channel.off(op.event) } else { channel.off(op.event, bindings.get(op.id)) }
  },
  resend(op){ pushes.get(op.push).push.resend(op.timeout) },
  receive(op){
    const {push, socket} = pushes.get(op.push)
    push.receive(op.status, response => {
      outcome({s: socket, p: op.push, status: op.status, tag: op.tag, payload: plain(response)})
    })
  },
  presence(op){
    const {channel, socket: s} = channels.get(op.chan)
    const pr = op.id
    const presence = new Presence(channel)
    presence.onJoin((key, current, joined) => {
      outcome({s, pr, cb: "join", key, current: presenceMetas(current), joined: presenceMetas(joined)})
    })
    presence.onLeave((key, current, left) => {
      outcome({s, pr, cb: "leave", key, current: presenceMetas(current), left: presenceMetas(left)})
    })
    presence.onSync(() => {
      outcome({s, pr, cb: "sync", list: presence.list((key, p) => [key, p.metas.length])})
    })
    presences.set(pr, presence)
  },
}

// An op with "catch": ID reports whether it threw, as an outcome, instead of
// failing the step (for API misuse that both clients must refuse).
function runOp(op){
  if(op.catch === undefined){ return OPS[op.op](op) }
  let threw = false
  try { OPS[op.op](op) } catch (_error){ threw = true }
  outcome({s: op.s, caught: op.catch, threw})
}

const input = createInterface({input: process.stdin})
input.on("line", line => {
  if(!line.trim()){ return }
  const request = JSON.parse(line)
  if(request.end){
    process.stdout.write(JSON.stringify({ack: request.id}) + "\n", () => process.exit(0))
    return
  }
  try {
    for(const op of request.ops){ runOp(op) }
    emit({ack: request.id})
  } catch (error){
    emit({ack: request.id, error: String(error && error.stack || error)})
  }
})
input.on("close", () => process.exit(0))
