/**
 * A tiny OpenAI-compatible chat endpoint (POST /v1/chat/completions) for the end-to-end tests: it
 * answers with plain replies and an `end_call` tool call when the caller is done, and fails the first
 * request for one caller (found by the contact name in the system prompt) with HTTP 500.
 */
import http from 'http';
import type { AddressInfo } from 'net';

export interface FakeLlm {
  url: string;
  /** Every request: the contact it was for (by name, when known), the caller's words and the status sent. */
  requests: Array<{ name?: string; userText: string; status: number }>;
  close(): Promise<void>;
}

export async function startFakeLlm(opts: { names: string[]; failOnceFor: string }): Promise<FakeLlm> {
  const requests: FakeLlm['requests'] = [];
  let failed = false;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      let body: { model?: string; messages?: Array<{ role: string; content: string }> };
      try {
        body = JSON.parse(raw);
      } catch {
        res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"error":{"message":"bad json"}}');
        return;
      }
      const messages = body.messages ?? [];
      const system = messages.find((m) => m.role === 'system')?.content ?? '';
      const name = opts.names.find((n) => system.includes(n));
      const userText = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
      if (req.url !== '/v1/chat/completions') {
        requests.push({ name, userText, status: 404 });
        res.writeHead(404).end();
        return;
      }
      if (name === opts.failOnceFor && !failed) {
        failed = true;
        requests.push({ name, userText, status: 500 });
        res
          .writeHead(500, { 'Content-Type': 'application/json' })
          .end('{"error":{"message":"the model crashed (test)"}}');
        return;
      }
      requests.push({ name, userText, status: 200 });
      const t = userText.toLowerCase();
      let message: Record<string, unknown>;
      if (/that is all|thank you|bye/.test(t)) {
        message = {
          role: 'assistant',
          content: 'Thank you, goodbye.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'end_call', arguments: '{"reason":"done"}' } },
          ],
        };
      } else if (/who is this/.test(t)) {
        message = {
          role: 'assistant',
          content: 'This is the reminder service about your appointment. Can you make it?',
        };
      } else {
        message = { role: 'assistant', content: 'Great, you are confirmed. Is there anything else?' };
      }
      const finish = message.tool_calls ? 'tool_calls' : 'stop';
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          id: 'chatcmpl-test',
          object: 'chat.completion',
          model: body.model,
          choices: [{ index: 0, finish_reason: finish, message }],
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
