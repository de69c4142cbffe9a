/**
 * The ARI swagger (1.1-style, as Asterisk serves them) resource documents the simulator serves at
 * `/ari/api-docs/*.json`. Written from the public ARI reference, covering only the resources and
 * operations this project uses: asterisk, channels, applications, events. The ARI client
 * (src/ari/client.ts) loads `resources.json`, then each resource document it uses, and builds one
 * operation per `nickname`.
 *
 * Asterisk rewrites `basePath` to the address the client used; so do we.
 */

export const API_VERSION = '10.0.0';

type Json = Record<string, unknown>;

function param(
  name: string,
  paramType: 'query' | 'path' | 'body',
  dataType: string,
  required: boolean,
  description: string,
  extra: Json = {},
): Json {
  return { name, description, paramType, required, allowMultiple: false, dataType, ...extra };
}

function doc(resource: string, basePath: string, apis: Json[], models: Json, requiresModules: string[]): Json {
  return {
    _copyright: 'Asterisk ARI resource description, written for the node-red-contrib-ai-dialer simulator',
    apiVersion: API_VERSION,
    swaggerVersion: '1.1',
    basePath,
    resourcePath: `/api-docs/${resource}.{format}`,
    requiresModules,
    apis,
    models,
  };
}

const CallerID: Json = {
  id: 'CallerID',
  description: 'Caller identification',
  properties: { name: { required: true, type: 'string' }, number: { required: true, type: 'string' } },
};

const DialplanCEP: Json = {
  id: 'DialplanCEP',
  description: 'Dialplan location (context/extension/priority)',
  properties: {
    context: { required: true, type: 'string', description: 'Context in the dialplan' },
    exten: { required: true, type: 'string', description: 'Extension in the dialplan' },
    priority: { required: true, type: 'long', description: 'Priority in the dialplan' },
    app_name: { required: true, type: 'string', description: 'Name of current dialplan application' },
    app_data: { required: true, type: 'string', description: 'Parameter of current dialplan application' },
  },
};

const Channel: Json = {
  id: 'Channel',
  description: 'A specific communication connection between Asterisk and an Endpoint.',
  properties: {
    id: { required: true, type: 'string', description: 'Unique identifier of the channel.' },
    protocol_id: { required: true, type: 'string', description: 'Protocol id from underlying channel driver.' },
    name: { required: true, type: 'string', description: 'Name of the channel (i.e. SIP/foo-0000a7e3)' },
    state: {
      required: true,
      type: 'string',
      allowableValues: {
        valueType: 'LIST',
        values: [
          'Down',
          'Rsrved',
          'OffHook',
          'Dialing',
          'Ring',
          'Ringing',
          'Up',
          'Busy',
          'Dialing Offhook',
          'Pre-ring',
          'Unknown',
        ],
      },
    },
    caller: { required: true, type: 'CallerID' },
    connected: { required: true, type: 'CallerID' },
    accountcode: { required: true, type: 'string' },
    dialplan: { required: true, type: 'DialplanCEP', description: 'Current location in the dialplan' },
    creationtime: { required: true, type: 'Date', description: 'Timestamp when channel was created' },
    language: { required: true, type: 'string', description: 'The default spoken language' },
    channelvars: { required: false, type: 'object', description: 'Channel variables' },
  },
};

const Variable: Json = {
  id: 'Variable',
  description: 'The value of a channel variable',
  properties: { value: { required: true, type: 'string', description: 'The value of the variable requested' } },
};

export function resourcesDoc(basePath: string): Json {
  return {
    _copyright: 'Asterisk ARI resource listing, written for the node-red-contrib-ai-dialer simulator',
    apiVersion: API_VERSION,
    swaggerVersion: '1.1',
    basePath,
    apis: [
      { path: '/api-docs/asterisk.{format}', description: 'Asterisk resources' },
      { path: '/api-docs/channels.{format}', description: 'Channel resources' },
      { path: '/api-docs/applications.{format}', description: 'Stasis application resources' },
      { path: '/api-docs/events.{format}', description: 'WebSocket resource' },
    ],
  };
}

function asteriskDoc(basePath: string): Json {
  return doc(
    'asterisk',
    basePath,
    [
      {
        path: '/asterisk/info',
        description: 'Asterisk system information (similar to core show settings)',
        operations: [
          {
            httpMethod: 'GET',
            summary: 'Gets Asterisk system information.',
            nickname: 'getInfo',
            responseClass: 'AsteriskInfo',
            parameters: [
              param('only', 'query', 'string', false, 'Filter information returned', {
                allowMultiple: true,
                allowableValues: { valueType: 'LIST', values: ['build', 'system', 'config', 'status'] },
              }),
            ],
          },
        ],
      },
      {
        path: '/asterisk/ping',
        description: 'Asterisk ping',
        operations: [
          { httpMethod: 'GET', summary: 'Response pong message.', nickname: 'ping', responseClass: 'AsteriskPing' },
        ],
      },
    ],
    {
      AsteriskInfo: {
        id: 'AsteriskInfo',
        description: 'Asterisk system information',
        properties: {
          build: { required: false, type: 'BuildInfo' },
          system: { required: false, type: 'SystemInfo' },
          config: { required: false, type: 'ConfigInfo' },
          status: { required: false, type: 'StatusInfo' },
        },
      },
      BuildInfo: {
        id: 'BuildInfo',
        properties: {
          os: { type: 'string', required: true },
          kernel: { type: 'string', required: true },
          options: { type: 'string', required: true },
          machine: { type: 'string', required: true },
          date: { type: 'string', required: true },
          user: { type: 'string', required: true },
        },
      },
      SystemInfo: {
        id: 'SystemInfo',
        properties: { version: { type: 'string', required: true }, entity_id: { type: 'string', required: true } },
      },
      ConfigInfo: {
        id: 'ConfigInfo',
        properties: { name: { type: 'string', required: true }, default_language: { type: 'string', required: true } },
      },
      StatusInfo: {
        id: 'StatusInfo',
        properties: {
          startup_time: { type: 'Date', required: true },
          last_reload_time: { type: 'Date', required: true },
        },
      },
      AsteriskPing: {
        id: 'AsteriskPing',
        properties: {
          asterisk_id: { type: 'string', required: true },
          ping: { type: 'string', required: true },
          timestamp: { type: 'string', required: true },
        },
      },
    },
    [],
  );
}

function channelsDoc(basePath: string): Json {
  const channelId = param('channelId', 'path', 'string', true, "Channel's id");
  return doc(
    'channels',
    basePath,
    [
      {
        path: '/channels',
        description: 'Active channels',
        operations: [
          {
            httpMethod: 'GET',
            summary: 'List all active channels in Asterisk.',
            nickname: 'list',
            responseClass: 'List[Channel]',
          },
          {
            httpMethod: 'POST',
            summary: 'Create a new channel (originate).',
            notes:
              'The new channel is created immediately and a snapshot of it returned. If a Stasis application is provided it will be automatically subscribed to the originated channel for further events and updates.',
            nickname: 'originate',
            responseClass: 'Channel',
            parameters: [
              param('endpoint', 'query', 'string', true, 'Endpoint to call.'),
              param(
                'extension',
                'query',
                'string',
                false,
                "The extension to dial after the endpoint answers. Mutually exclusive with 'app'.",
              ),
              param(
                'context',
                'query',
                'string',
                false,
                "The context to dial after the endpoint answers. If omitted, uses 'default'. Mutually exclusive with 'app'.",
              ),
              param(
                'priority',
                'query',
                'long',
                false,
                "The priority to dial after the endpoint answers. If omitted, uses 1. Mutually exclusive with 'app'.",
              ),
              param('label', 'query', 'string', false, 'The label to dial after the endpoint answers.'),
              param(
                'app',
                'query',
                'string',
                false,
                'The application that is subscribed to the originated channel. When the channel is answered, it will be passed to this Stasis application.',
              ),
              param(
                'appArgs',
                'query',
                'string',
                false,
                "The application arguments to pass to the Stasis application provided by 'app'.",
              ),
              param('callerId', 'query', 'string', false, 'CallerID to use when dialing the endpoint or extension.'),
              param(
                'timeout',
                'query',
                'int',
                false,
                'Timeout (in seconds) before giving up dialing, or -1 for no timeout.',
                { defaultValue: 30 },
              ),
              param(
                'variables',
                'body',
                'containers',
                false,
                'The "variables" key in the body object holds variable key/value pairs to set on the channel on creation.',
              ),
              param('channelId', 'query', 'string', false, 'The unique id to assign the channel on creation.'),
              param(
                'otherChannelId',
                'query',
                'string',
                false,
                'The unique id to assign the second channel when using local channels.',
              ),
              param(
                'originator',
                'query',
                'string',
                false,
                'The unique id of the channel which is originating this one.',
              ),
              param(
                'formats',
                'query',
                'string',
                false,
                'The format name capability list to use if originator is not specified. Ex. "ulaw,slin16".',
              ),
            ],
            errorResponses: [
              { code: 400, reason: 'Invalid parameters for originating a channel.' },
              { code: 409, reason: 'Channel with given unique ID already exists.' },
            ],
          },
        ],
      },
      {
        path: '/channels/{channelId}',
        description: 'Active channel',
        operations: [
          {
            httpMethod: 'GET',
            summary: 'Channel details.',
            nickname: 'get',
            responseClass: 'Channel',
            parameters: [channelId],
            errorResponses: [{ code: 404, reason: 'Channel not found' }],
          },
          {
            httpMethod: 'DELETE',
            summary: 'Delete (i.e. hangup) a channel.',
            nickname: 'hangup',
            responseClass: 'void',
            parameters: [
              channelId,
              param(
                'reason_code',
                'query',
                'string',
                false,
                "The reason code for hanging up the channel for detail use. Mutually exclusive with 'reason'.",
              ),
              param(
                'reason',
                'query',
                'string',
                false,
                "Reason for hanging up the channel for simple use. Mutually exclusive with 'reason_code'.",
                {
                  defaultValue: 'normal',
                  allowableValues: {
                    valueType: 'LIST',
                    values: [
                      'normal',
                      'busy',
                      'congestion',
                      'no_answer',
                      'timeout',
                      'rejected',
                      'unallocated',
                      'normal_unspecified',
                      'number_incomplete',
                      'codec_mismatch',
                      'interworking',
                      'failure',
                      'answered_elsewhere',
                    ],
                  },
                },
              ),
            ],
            errorResponses: [
              { code: 400, reason: 'Invalid reason for hangup provided' },
              { code: 404, reason: 'Channel not found' },
            ],
          },
        ],
      },
      {
        path: '/channels/{channelId}/continue',
        description: 'Exit application; continue execution in the dialplan',
        operations: [
          {
            httpMethod: 'POST',
            summary: 'Exit application; continue execution in the dialplan.',
            nickname: 'continueInDialplan',
            responseClass: 'void',
            parameters: [
              channelId,
              param('context', 'query', 'string', false, 'The context to continue to.'),
              param('extension', 'query', 'string', false, 'The extension to continue to.'),
              param('priority', 'query', 'int', false, 'The priority to continue to.'),
              param(
                'label',
                'query',
                'string',
                false,
                "The label to continue to - will supersede 'priority' if both are provided.",
              ),
            ],
            errorResponses: [
              { code: 404, reason: 'Channel not found' },
              { code: 409, reason: 'Channel not in a Stasis application' },
              { code: 412, reason: 'Channel in invalid state' },
            ],
          },
        ],
      },
      {
        path: '/channels/{channelId}/variable',
        description: 'Variables on a channel',
        operations: [
          {
            httpMethod: 'GET',
            summary: 'Get the value of a channel variable or function.',
            nickname: 'getChannelVar',
            responseClass: 'Variable',
            parameters: [
              channelId,
              param('variable', 'query', 'string', true, 'The channel variable or function to get'),
            ],
            errorResponses: [
              { code: 400, reason: 'Missing variable parameter.' },
              { code: 404, reason: 'Channel or variable not found' },
              { code: 409, reason: 'Channel not in a Stasis application' },
            ],
          },
          {
            httpMethod: 'POST',
            summary: 'Set the value of a channel variable or function.',
            nickname: 'setChannelVar',
            responseClass: 'void',
            parameters: [
              channelId,
              param('variable', 'query', 'string', true, 'The channel variable or function to set'),
              param('value', 'query', 'string', false, 'The value to set the variable to'),
            ],
            errorResponses: [
              { code: 400, reason: 'Missing variable parameter.' },
              { code: 404, reason: 'Channel not found' },
              { code: 409, reason: 'Channel not in a Stasis application' },
            ],
          },
        ],
      },
    ],
    { Channel, CallerID, DialplanCEP, Variable },
    ['res_stasis_answer', 'res_stasis_playback', 'res_stasis_recording', 'res_stasis_snoop'],
  );
}

function applicationsDoc(basePath: string): Json {
  return doc(
    'applications',
    basePath,
    [
      {
        path: '/applications',
        description: 'Stasis applications',
        operations: [
          {
            httpMethod: 'GET',
            summary: 'List all applications.',
            nickname: 'list',
            responseClass: 'List[Application]',
          },
        ],
      },
      {
        path: '/applications/{applicationName}',
        description: 'Stasis application',
        operations: [
          {
            httpMethod: 'GET',
            summary: 'Get details of an application.',
            nickname: 'get',
            responseClass: 'Application',
            parameters: [param('applicationName', 'path', 'string', true, "Application's name")],
            errorResponses: [{ code: 404, reason: 'Application does not exist.' }],
          },
        ],
      },
    ],
    {
      Application: {
        id: 'Application',
        description: 'Details of a Stasis application',
        properties: {
          name: { type: 'string', required: true, description: 'Name of this application' },
          channel_ids: { type: 'List[string]', required: true, description: "Id's for channels subscribed to." },
          bridge_ids: { type: 'List[string]', required: true, description: "Id's for bridges subscribed to." },
          endpoint_ids: {
            type: 'List[string]',
            required: true,
            description: '{tech}/{resource} for endpoints subscribed to.',
          },
          device_names: { type: 'List[string]', required: true, description: 'Names of the devices subscribed to.' },
          events_allowed: { type: 'List[object]', required: true, description: 'Event types sent to the application.' },
          events_disallowed: {
            type: 'List[object]',
            required: true,
            description: 'Event types not sent to the application.',
          },
        },
      },
    },
    ['res_stasis'],
  );
}

/** Event types the simulator sends; each is a model in events.json (ari-client looks every event up there). */
export const EVENT_TYPES = [
  'StasisStart',
  'StasisEnd',
  'ChannelStateChange',
  'ChannelVarset',
  'ChannelHangupRequest',
  'ChannelDestroyed',
  'Dial',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

function eventsDoc(basePath: string): Json {
  const base = {
    type: { required: true, type: 'string', description: 'Indicates the type of this message.' },
    asterisk_id: {
      required: false,
      type: 'string',
      description: 'The unique ID for the Asterisk instance that raised this event.',
    },
  };
  const ev = (id: string, description: string, properties: Json): Json => ({
    id,
    description,
    properties: {
      application: { required: true, type: 'string', description: 'Name of the application receiving the event.' },
      timestamp: { required: true, type: 'Date', description: 'Time at which this event was created.' },
      ...properties,
    },
  });
  return doc(
    'events',
    basePath,
    [
      {
        path: '/events',
        description: 'Events from Asterisk to applications',
        operations: [
          {
            httpMethod: 'GET',
            upgrade: 'websocket',
            websocketProtocol: 'ari',
            summary: 'WebSocket connection for events.',
            nickname: 'eventWebsocket',
            responseClass: 'Message',
            parameters: [
              param('app', 'query', 'string', true, 'Applications to subscribe to.', { allowMultiple: true }),
              param(
                'subscribeAll',
                'query',
                'boolean',
                false,
                'Subscribe to all Asterisk events. If provided, the applications listed will be subscribed to all events.',
              ),
            ],
          },
        ],
      },
    ],
    {
      Message: {
        id: 'Message',
        description: 'Base type for errors and events',
        discriminator: 'type',
        properties: base,
        subTypes: ['Event'],
      },
      Event: {
        id: 'Event',
        description: 'Base type for asynchronous events from Asterisk.',
        properties: {
          application: { required: true, type: 'string' },
          timestamp: { required: true, type: 'Date' },
        },
        subTypes: [...EVENT_TYPES],
      },
      Channel,
      CallerID,
      DialplanCEP,
      StasisStart: ev('StasisStart', 'Notification that a channel has entered a Stasis application.', {
        args: { required: true, type: 'List[string]', description: 'Arguments to the application' },
        channel: { required: true, type: 'Channel' },
        replace_channel: { required: false, type: 'Channel' },
      }),
      StasisEnd: ev('StasisEnd', 'Notification that a channel has left a Stasis application.', {
        channel: { required: true, type: 'Channel' },
      }),
      ChannelStateChange: ev('ChannelStateChange', "Notification of a channel's state change.", {
        channel: { required: true, type: 'Channel' },
      }),
      ChannelVarset: ev('ChannelVarset', 'Channel variable changed.', {
        variable: { required: true, type: 'string', description: 'The variable that changed.' },
        value: { required: true, type: 'string', description: 'The new value of the variable.' },
        channel: {
          required: false,
          type: 'Channel',
          description: 'The channel on which the variable was set. If missing, the variable is a global variable.',
        },
      }),
      ChannelHangupRequest: ev('ChannelHangupRequest', 'A hangup was requested on the channel.', {
        cause: { type: 'int', description: 'Integer representation of the cause of the hangup.' },
        soft: { type: 'boolean', description: 'Whether the hangup request was a soft hangup request.' },
        channel: { required: true, type: 'Channel', description: 'The channel on which the hangup was requested.' },
      }),
      ChannelDestroyed: ev('ChannelDestroyed', 'Notification that a channel has been destroyed.', {
        cause: { required: true, type: 'int', description: 'Integer representation of the cause of the hangup' },
        cause_txt: { required: true, type: 'string', description: 'Text representation of the cause of the hangup' },
        channel: { required: true, type: 'Channel' },
      }),
      Dial: ev('Dial', 'Dialing state has changed.', {
        caller: { required: false, type: 'Channel', description: 'The calling channel.' },
        peer: { required: true, type: 'Channel', description: 'The dialed channel.' },
        forward: {
          required: false,
          type: 'string',
          description: 'Forwarding target requested by the original dialed channel.',
        },
        forwarded: { required: false, type: 'Channel', description: 'Channel that the caller has been forwarded to.' },
        dialstring: { required: false, type: 'string', description: 'The dial string for calling the peer channel.' },
        dialstatus: {
          required: true,
          type: 'string',
          description: 'Current status of the dialing attempt to the peer.',
        },
      }),
    },
    ['res_http_websocket'],
  );
}

const DOCS: Record<string, (basePath: string) => Json> = {
  asterisk: asteriskDoc,
  channels: channelsDoc,
  applications: applicationsDoc,
  events: eventsDoc,
};

/** The document for `/ari/api-docs/<name>.json`, or undefined for a resource we do not serve. */
export function resourceDoc(name: string, basePath: string): Json | undefined {
  if (name === 'resources') return resourcesDoc(basePath);
  const f = DOCS[name];
  return f ? f(basePath) : undefined;
}
