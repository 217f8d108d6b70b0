#!/usr/bin/env node
// A handshake-era-only MCP server (TypeScript SDK 1.x low-level Server, stdio) whose tool list changes: `grow`
// adds `shout`, whose `region` argument clients mirror into the Mcp-Param-Region header (x-mcp-header), and
// announces it with notifications/tools/list_changed. mcpsim's listing cache must not keep the old list
// (tests/server/test_listing_refresh.py).
//   node tests/servers/growing.cjs
"use strict";
const path = require("node:path");

const sdk = path.join(__dirname, "..", "node", "node_modules", "@modelcontextprotocol", "sdk", "dist", "cjs");
const { Server } = require(path.join(sdk, "server", "index.js"));
const { StdioServerTransport } = require(path.join(sdk, "server", "stdio.js"));
const { CallToolRequestSchema, ListToolsRequestSchema } = require(path.join(sdk, "types.js"));

const GROW = { name: "grow", description: "Adds the shout tool", inputSchema: { type: "object", properties: {} } };
const SHOUT = {
  name: "shout",
  description: "Shouts its region",
  inputSchema: {
    type: "object",
    properties: { region: { type: "string", "x-mcp-header": "Region" } },
    required: ["region"],
  },
};
const tools = [GROW];
const server = new Server({ name: "growing", version: "1.0.0" }, { capabilities: { tools: { listChanged: true } } });

function text(value) {
  return { content: [{ type: "text", text: value }] };
}

server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));
server.setRequestHandler(CallToolRequestSchema, async (request) => {
  const { name, arguments: args } = request.params;
  if (name === "grow") {
    if (!tools.includes(SHOUT)) tools.push(SHOUT);
    await server.sendToolListChanged();
    return text("grown");
  }
  if (name === "shout" && tools.includes(SHOUT)) return text(`${String(args.region).toUpperCase()}!`);
  return { ...text(`unknown tool ${name}`), isError: true };
});

const transport = new StdioServerTransport();
transport.onclose = () => process.exit(0);
server.connect(transport).then(() => process.stdin.on("end", () => process.exit(0)));
