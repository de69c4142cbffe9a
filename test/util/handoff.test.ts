/** src/util/handoff.ts: what a node keeps for its next instance across a redeploy. */
import {
  adopt,
  announce,
  disposeParked,
  handoffKey,
  park,
  parkedCount,
  retire,
  successor,
} from '../../src/util/handoff';

afterEach(() => disposeParked());

test('the next instance with the same settings adopts the parked value; it is not disposed', async () => {
  const dispose = jest.fn();
  const server = { name: 'agi' };
  park('kept:fastagi-in:n1', handoffKey({ port: '0' }), server, dispose);
  const got = adopt<typeof server>('kept:fastagi-in:n1', handoffKey({ port: '0' }));
  expect(got.value).toBe(server);
  await got.disposed;
  expect(dispose).not.toHaveBeenCalled();
  expect(parkedCount()).toBe(0);
});

test('changed settings: the parked value is disposed (awaitable: e.g. its port is free again)', async () => {
  let closed = false;
  park('kept:fastagi-in:n2', handoffKey({ port: '4573' }), {}, async () => {
    await new Promise((r) => setTimeout(r, 20));
    closed = true;
  });
  const got = adopt('kept:fastagi-in:n2', handoffKey({ port: '4574' }));
  expect(got.value).toBeUndefined();
  await got.disposed;
  expect(closed).toBe(true);
});

test('nobody adopts within the linger: disposed; disposeParked disposes at once (runtime stop)', async () => {
  const late = jest.fn();
  park('kept:x:n3', 'k', {}, late, 30);
  await new Promise((r) => setTimeout(r, 80));
  expect(late).toHaveBeenCalledTimes(1);
  const now = jest.fn();
  park('kept:x:n4', 'k', {}, now);
  await disposeParked();
  expect(now).toHaveBeenCalledTimes(1);
  expect(adopt('kept:x:n4', 'k').value).toBeUndefined();
});

test('successor: the next instance of a node, when it comes; undefined when the node is removed', async () => {
  const old = { v: 1 };
  announce('node:a', old);
  retire('node:a', old, false);
  const next = successor('node:a', old, 5000);
  const fresh = { v: 2 };
  announce('node:a', fresh);
  await expect(next).resolves.toBe(fresh);
  await expect(successor('node:a', old, 10)).resolves.toBe(fresh); // already there

  retire('node:a', fresh, false);
  const none = successor('node:a', fresh, 5000);
  retire('node:a', fresh, true); // removed by the Deploy
  await expect(none).resolves.toBeUndefined();
  await expect(successor('node:gone', {}, 20)).resolves.toBeUndefined(); // timeout
});
