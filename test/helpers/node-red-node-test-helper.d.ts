// node-red-node-test-helper ships no types; tests use it untyped (helper.load/getNode/receive...).
declare module 'node-red-node-test-helper';
