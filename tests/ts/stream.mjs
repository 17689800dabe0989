// Parse one proxied response with the official TypeScript SDK.
// argv: SDK module path, base URL, request JSON. Prints the outcome as JSON.
import { createRequire } from "node:module";

const [sdkPath, baseURL, body] = process.argv.slice(2);
const Anthropic = createRequire(import.meta.url)(sdkPath).default;
const client = new Anthropic({ baseURL, apiKey: "test-key", maxRetries: 0 });
const request = JSON.parse(body);

try {
  if (request.stream === false) {
    const { stream, ...params } = request;
    const message = await client.messages.create(params);
    console.log(JSON.stringify({ message }));
  } else {
    const { stream: _ignored, ...params } = request;
    const events = [];
    const blocks = [];
    const runner = client.messages.stream(params);
    runner.on("streamEvent", (event) => events.push(event.type));
    runner.on("contentBlock", (block) => blocks.push(block.type));
    const message = await runner.finalMessage();
    console.log(JSON.stringify({ message, events, blocks }));
  }
} catch (error) {
  console.log(JSON.stringify({ error: { status: error.status ?? null, type: error.error?.error?.type ?? null,
                                        message: String(error.message) } }));
}
