#!/usr/bin/env node
// A handshake-era-only MCP server on the official TypeScript SDK 1.x (tests/node/node_modules), stdio: tools that
// ask their client mid-call (sampling, elicitation, roots) and that emit notifications (logs, list changes,
// resource updates). mcpsim must turn the first into input_required rounds and the second into
// subscriptions/listen events for a 2026-07-28 client (tests/server/test_rounds.py).
//   node tests/servers/asking.cjs
"use strict";
const path = require("node:path");

const sdk = path.join(__dirname, "..", "node", "node_modules", "@modelcontextprotocol", "sdk", "dist", "cjs");
const { McpServer } = require(path.join(sdk, "server", "mcp.js"));
const { StdioServerTransport } = require(path.join(sdk, "server", "stdio.js"));
const { SubscribeRequestSchema, UnsubscribeRequestSchema } = require(path.join(sdk, "types.js"));
const { z } = require(path.join(__dirname, "..", "node", "node_modules", "zod"));

const server = new McpServer(
  { name: "asking", version: "1.0.0" },
  { capabilities: { logging: {}, resources: { subscribe: true, listChanged: true }, tools: { listChanged: true } } },
);
const subscribed = new Set();
let note = "first";

function text(value) {
  return { content: [{ type: "text", text: value }] };
}

async function askModel(prompt) {
  const answer = await server.server.createMessage({
    messages: [{ role: "user", content: { type: "text", text: prompt } }],
    maxTokens: 50,
  });
  return answer.content.type === "text" ? answer.content.text : `(${answer.content.type})`;
}

async function askUser(question) {
  const schema = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] };
  const answer = await server.server.elicitInput({ message: question, requestedSchema: schema });
  return answer.action === "accept" ? answer.content.answer : `(${answer.action})`;
}

server.tool("ask_model", "Asks the client's model (sampling)", { prompt: z.string() }, async ({ prompt }) =>
  text(`model said: ${await askModel(prompt)}`),
);
server.tool("ask_user", "Asks the client's user (elicitation)", { question: z.string() }, async ({ question }) =>
  text(`user said: ${await askUser(question)}`),
);
server.tool("ask_both", "Asks the model, then the user about its answer", { prompt: z.string() }, async ({ prompt }) => {
  const said = await askModel(prompt);
  return text(`model said: ${said}; user said: ${await askUser(`The model said ${said}. Agree?`)}`);
});
server.tool("ask_roots", "Lists the client's roots", {}, async () => {
  const { roots } = await server.server.listRoots();
  return text(`roots: ${roots.map((root) => root.name ?? root.uri).join(", ")}`);
});
server.tool("log", "Logs at debug, info, warning and error", {}, async () => {
  for (const level of ["debug", "info", "warning", "error"]) {
    await server.server.sendLoggingMessage({ level, logger: "asking", data: `a ${level} message` });
  }
  return text("logged");
});
server.tool("count", "Reports progress 1..n, then answers", { n: z.number() }, async ({ n }, extra) => {
  const token = extra._meta?.progressToken;
  for (let i = 1; i <= n && token !== undefined; i++) {
    await extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress: i, total: n } });
  }
  return text(`counted ${n}`);
});
server.tool("wait", "Answers after some seconds", { seconds: z.number() }, async ({ seconds }) => {
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return text(`waited ${seconds}`);
});
server.tool("change", "Changes the note and the tool list", {}, async () => {
  note = `changed ${Date.now()}`;
  if (subscribed.has("memo://note")) await server.server.sendResourceUpdated({ uri: "memo://note" });
  server.sendToolListChanged();
  return text("changed");
});
server.resource("note", "memo://note", { mimeType: "text/plain" }, async (uri) => ({
  contents: [{ uri: uri.href, mimeType: "text/plain", text: note }],
}));
server.server.setRequestHandler(SubscribeRequestSchema, async (request) => {
  subscribed.add(request.params.uri);
  return {};
});
server.server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
  subscribed.delete(request.params.uri);
  return {};
});

const transport = new StdioServerTransport();
transport.onclose = () => process.exit(0);
server.connect(transport).then(() => process.stdin.on("end", () => process.exit(0)));
