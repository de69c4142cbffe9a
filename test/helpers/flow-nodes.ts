/**
 * Pieces of the test flows shared by the conversation suites (the default flow's loop, in small).
 */

/** The loop's switch: a reply that ends the call goes to `hang`, any other back to the recording (`rec`). */
export function replyDoneSwitch(): Record<string, unknown> {
  return {
    id: 'sw',
    type: 'switch',
    property: 'reply.done',
    propertyType: 'msg',
    rules: [{ t: 'true' }, { t: 'else' }],
    checkall: 'false',
    outputs: 2,
    wires: [['hang'], ['rec']],
  };
}
