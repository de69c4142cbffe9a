import { within } from '../../src/util/within';

test('within: the value when it comes in time, undefined once the bound passed, a rejection passed on', async () => {
  await expect(within(Promise.resolve(7), 1000)).resolves.toBe(7);
  let late: (v: string) => void = () => undefined;
  const never = new Promise<string>((r) => (late = r));
  const t0 = Date.now();
  await expect(within(never, 50)).resolves.toBeUndefined();
  expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
  late('too late'); // the caller's to handle: within has returned already
  await expect(within(Promise.reject(new Error('boom')), 1000)).rejects.toThrow('boom');
});

test('within clears its timer: a wait that ended early leaves no timer behind', async () => {
  const active = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = active();
  await within(Promise.resolve('now'), 60_000);
  expect(active()).toBe(before);
});
