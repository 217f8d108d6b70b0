#!/usr/bin/env node
// FrozenLake as a production MCP server on the official TypeScript SDK: one process, one seeded episode.
//   node server.js --seed 3                 stdio (the default)
//   node server.js --seed 3 --port 8000     streamable HTTP at http://127.0.0.1:8000/mcp
// The seed also comes from MCPSIM_SEED, the config (JSON object: map_size, is_slippery, max_steps) from
// MCPSIM_CONFIG. Tool `lake_move(action)` and resource `game://initial_state` behave like the Python server's;
// reward and episode end travel in the result's `_meta.mcpsim`, never in the text.
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

import { ACTIONS, Episode } from "./lake.js";

function fail(message) {
  console.error(`js_frozen_lake: ${message}`);
  process.exit(2);
}

function options() {
  const { values } = parseArgs({
    options: {
      seed: { type: "string", default: process.env.MCPSIM_SEED ?? "0" },
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
    },
  });
  if (!/^\d+$/.test(values.seed)) fail(`--seed must be a non-negative integer, got '${values.seed}'`);
  if (values.port !== undefined && !/^\d+$/.test(values.port)) fail(`--port must be a number, got '${values.port}'`);
  let config = {};
  if (process.env.MCPSIM_CONFIG) {
    try {
      config = JSON.parse(process.env.MCPSIM_CONFIG);
    } catch (error) {
      fail(`invalid MCPSIM_CONFIG: ${error.message}`);
    }
    if (config === null || typeof config !== "object" || Array.isArray(config)) {
      fail("invalid MCPSIM_CONFIG: config must be a JSON object");
    }
  }
  return { ...values, config };
}

/** An MCP server over the one episode; HTTP makes one per session (an McpServer has one transport). */
function buildServer(episode, initialText) {
  const server = new McpServer(
    { name: "frozen_lake", version: "0.1.0" },
    { instructions: "Navigate from S to G on the frozen lake using the lake_move tool." },
  );
  server.registerTool(
    "lake_move",
    {
      description:
        "Move one cell on the frozen lake: LEFT, DOWN, RIGHT or UP. Reach G without stepping into a hole H. " +
        "Returns the map with your new position.",
      // any string reaches the handler, so a bad action gets the list of valid ones; the enum is advertised
      inputSchema: { action: z.string().describe(`One of: ${ACTIONS.join(", ")}`).meta({ enum: ACTIONS }) },
    },
    async ({ action }) => {
      try {
        episode.step(action);
      } catch (error) {
        return { content: [{ type: "text", text: error.message }], isError: true, _meta: episode.meta() };
      }
      return { content: [{ type: "text", text: episode.render() }], _meta: episode.meta() };
    },
  );
  server.registerResource(
    "initial_state",
    "game://initial_state",
    { description: "The observation before the first move.", mimeType: "text/plain" },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: "text/plain", text: initialText }] }),
  );
  return server;
}

function jsonError(res, status, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32600, message } }));
}

async function serveHttp(episode, initialText, host, port) {
  const transports = new Map();
  const http = createServer(async (req, res) => {
    try {
      if (new URL(req.url, "http://localhost").pathname !== "/mcp") return jsonError(res, 404, "Not found: use /mcp");
      const sessionId = req.headers["mcp-session-id"];
      let transport = sessionId ? transports.get(sessionId) : undefined;
      if (sessionId && !transport) return jsonError(res, 404, `Session not found: ${sessionId}`);
      if (!transport) {
        if (req.method !== "POST") return jsonError(res, 400, "Bad Request: no session; POST initialize first");
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => transports.set(id, transport),
        });
        transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
        await buildServer(episode, initialText).connect(transport);
      }
      await transport.handleRequest(req, res);
    } catch (error) {
      console.error("js_frozen_lake: request failed:", error);
      if (!res.headersSent) jsonError(res, 500, `Internal error: ${error.message}`);
    }
  });
  http.listen(port, host, () => console.error(`js_frozen_lake: serving on http://${host}:${port}/mcp`));
  const stop = () => {
    for (const transport of transports.values()) transport.close();
    http.close(() => process.exit(0));
    http.closeAllConnections();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

const { seed, port, host, config } = options();
let episode;
try {
  episode = new Episode(seed, config);
} catch (error) {
  fail(`cannot start: ${error.message}`);
}
const initialText = episode.render();
if (port === undefined) {
  const transport = new StdioServerTransport();
  transport.onclose = () => process.exit(0);
  await buildServer(episode, initialText).connect(transport);
  process.stdin.on("end", () => process.exit(0));
} else {
  await serveHttp(episode, initialText, host, Number(port));
}
