// node-red-node-test-helper ships no types; tests use it untyped (helper.load/getNode/receive...).
declare module 'node-red-node-test-helper';
// Node-RED's core nodes (catch, change, switch...) loaded into the test runtime beside ours.
declare module '@node-red/nodes/core/*';
