// The OpenAI Agents SDK for JavaScript as a client of the bridge, with a minted client secret
// as its apiKey (as an app's page would have it): node agents_sdk_client.mjs URL SECRET.
// Prints one JSON line: the answer's text, the error codes seen, the response's status.
import { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } from "@openai/agents-realtime";

const [url, secret] = process.argv.slice(2);
const agent = new RealtimeAgent({
  name: "Assistant",
  instructions: "Reply with: the agent's own instructions (the secret's should win)",
});
const session = new RealtimeSession(agent, {
  transport: new OpenAIRealtimeWebSocket({ url }),
  model: "gpt-realtime",
  config: { outputModalities: ["text"] },
});
const timer = setTimeout(() => {
  console.error("no response.done within 15 s");
  process.exit(2);
}, 15000);
let text = "";
const errors = [];
session.on("transport_event", (event) => {
  if (event.type === "response.output_text.delta") text += event.delta;
  if (event.type === "error" && event.error && event.error.code) errors.push(event.error.code);
  if (event.type === "response.done") {
    console.log(JSON.stringify({ text, errors, status: event.response && event.response.status }));
    clearTimeout(timer);
    session.close();
    process.exit(0);
  }
});
// Error events also come as the session's "error" (unhandled, Node would throw): recorded above.
session.on("error", () => {});
await session.connect({ apiKey: secret });
session.sendMessage("Hi");
