#!/usr/bin/env node
// MQTT.js (the `mqtt` package from npm) driven line by line, for the Culex interop tests.
//
// Owns: one MQTT.js client whose every event becomes a JSON line on stdout, steered by JSON
// commands on stdin. Called by: tests/interop/test_websockets.py (class MqttJs), which
// starts `node mqttjs_client.js '<options JSON>'` and waits (bounded) for the events.
//
// Options (argv[2], JSON): url (mqtt://, ws://, wss://, with any path), clientId,
// protocolVersion (3, 4 or 5), clean, username, password, ca/cert/key (file paths, for
// wss://), headers (extra HTTP headers on the WebSocket upgrade, e.g. Origin),
// topicAliasMaximum (5.0: the broker may send topic aliases, which MQTT.js resolves).
// Commands (stdin, one JSON object a line):
//   {"op":"subscribe","topic":"t","qos":1}
//   {"op":"publish","topic":"t","payload":"text","qos":1,"retain":false}
//   {"op":"end"}                      clean DISCONNECT, then exit 0
// Events (stdout, one JSON object a line), "ev" is one of:
//   connect {sessionPresent, reasonCode}   suback {granted:[qos or reason code...]}
//   published {topic}                      message {topic, payload, qos, retain, alias}
// (`alias`: the Topic Alias the PUBLISH carried, or null; `topic` is already resolved).
//   error {message, code}                  close {}            exit {}
// The client never reconnects (reconnectPeriod 0): one connection per process.
'use strict'

const fs = require('fs')
const readline = require('readline')
const mqtt = require('mqtt')

function emit (ev, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ ev }, fields || {})) + '\n')
}

const opts = JSON.parse(process.argv[2] || '{}')
const connectOptions = {
  clientId: opts.clientId,
  protocolVersion: opts.protocolVersion || 4,
  clean: opts.clean !== undefined ? opts.clean : true,
  reconnectPeriod: 0,
  connectTimeout: 5000,
  keepalive: 30
}
if (connectOptions.protocolVersion === 3) connectOptions.protocolId = 'MQIsdp'
if (opts.username !== undefined) connectOptions.username = opts.username
if (opts.password !== undefined) connectOptions.password = opts.password
for (const name of ['ca', 'cert', 'key']) {
  if (opts[name]) connectOptions[name] = fs.readFileSync(opts[name])
}
if (opts.ca) connectOptions.rejectUnauthorized = true
if (opts.headers) connectOptions.wsOptions = { headers: opts.headers }
if (opts.topicAliasMaximum) {
  connectOptions.properties = { topicAliasMaximum: opts.topicAliasMaximum }
}

const client = mqtt.connect(opts.url, connectOptions)

client.on('connect', (connack) => {
  emit('connect', { sessionPresent: !!connack.sessionPresent, reasonCode: connack.reasonCode || connack.returnCode || 0 })
})
client.on('message', (topic, payload, packet) => {
  const alias = packet.properties && packet.properties.topicAlias
  emit('message', {
    topic,
    payload: payload.toString('utf8'),
    qos: packet.qos,
    retain: !!packet.retain,
    alias: alias === undefined ? null : alias
  })
})
client.on('error', (err) => emit('error', { message: String(err && err.message), code: err && err.code }))
client.on('close', () => emit('close'))

const input = readline.createInterface({ input: process.stdin })
input.on('line', (line) => {
  if (!line.trim()) return
  const cmd = JSON.parse(line)
  if (cmd.op === 'subscribe') {
    client.subscribe(cmd.topic, { qos: cmd.qos || 0 }, (err, granted) => {
      if (err) emit('error', { message: String(err.message) })
      else emit('suback', { granted: granted.map((g) => g.qos) })
    })
  } else if (cmd.op === 'publish') {
    client.publish(cmd.topic, cmd.payload, { qos: cmd.qos || 0, retain: !!cmd.retain }, (err) => {
      if (err) emit('error', { message: String(err.message) })
      else emit('published', { topic: cmd.topic })
    })
  } else if (cmd.op === 'end') {
    client.end(false, {}, () => { emit('exit'); process.exit(0) })
  }
})
// The test's end of stdin closing means the test is gone: do not linger.
input.on('close', () => client.end(true, {}, () => process.exit(0)))
