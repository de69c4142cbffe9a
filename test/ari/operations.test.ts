/** The ARI client builds its operations from the swagger documents (src/ari/client.ts operationsOf). */
import { ARI_RESOURCES, AriError, operationsOf } from '../../src/ari/client';
import { resourceDoc } from '../../src/sim/swagger';

describe('operations from the ARI resource documents', () => {
  test('every resource the client uses yields the operations it calls, by nickname', () => {
    const ops = Object.fromEntries(
      ARI_RESOURCES.map((r) => [r, operationsOf(resourceDoc(r, 'http://127.0.0.1:8088/ari'), r)]),
    );
    expect(ops.channels.originate).toMatchObject({ path: '/channels', method: 'POST' });
    expect(ops.channels.originate.parameters.find((p) => p.name === 'endpoint')).toMatchObject({
      paramType: 'query',
      required: true,
    });
    expect(ops.channels.hangup).toMatchObject({ path: '/channels/{channelId}', method: 'DELETE' });
    expect(ops.channels.getChannelVar).toMatchObject({ path: '/channels/{channelId}/variable', method: 'GET' });
    expect(ops.asterisk.getInfo).toMatchObject({ path: '/asterisk/info', method: 'GET' });
    expect(Object.keys(ops.applications)).toContain('list');
  });

  test('a document that is not ARI is a typed bad_response; malformed entries are skipped', () => {
    for (const bad of [null, 'html', {}, { apis: 'x' }]) {
      let err: unknown;
      try {
        operationsOf(bad, 'channels');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AriError);
      expect(err).toMatchObject({ kind: 'bad_response', message: 'ari: ARI channels document has no apis' });
    }
    const ops = operationsOf(
      {
        apis: [
          {
            path: '/a',
            operations: [{ httpMethod: 'get', nickname: 'ok', parameters: [{ name: 'x', paramType: 'query' }, {}] }],
          },
          { path: 5, operations: [{ httpMethod: 'GET', nickname: 'nopath' }] },
          { path: '/b', operations: [{ nickname: 'nomethod' }, null] },
        ],
      },
      'r',
    );
    expect(ops).toEqual({ ok: { path: '/a', method: 'GET', parameters: [{ name: 'x', paramType: 'query' }] } });
  });
});
