/**
 * Lint of asterisk-config/: every file parses into sections, includes resolve, the contexts and
 * endpoints the flow uses exist, no secret is written in the repository, and every deployment
 * placeholder is one the Asterisk image's entrypoint renders.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { loadConf, parseConf, dialplanSteps, type ConfFile, type ConfSection } from '../../src/ari/asterisk-conf';

const dir = path.join(__dirname, '..', '..', 'asterisk-config');
const files = ['extensions.conf', 'extensions-agi.conf', 'ari.conf', 'http.conf', 'pjsip.conf', 'modules.conf'];
// (every other .conf in asterisk-config/ is a small core file so a start logs no missing-config error)
const load = (f: string): ConfFile => loadConf(path.join(dir, f));
const get = (s: ConfSection, key: string): string[] => s.entries.filter((e) => e.key === key).map((e) => e.value);

describe('asterisk-config lint', () => {
  test.each(files)('%s parses into sections without errors', (f) => {
    const c = load(f);
    expect(c.errors).toEqual([]);
    expect(c.sections.length).toBeGreaterThan(0);
  });

  test('extensions.conf includes extensions-agi.conf and the include resolves', () => {
    const raw = parseConf(fs.readFileSync(path.join(dir, 'extensions.conf'), 'utf8'));
    expect(raw.includes.map((i) => i.target)).toContain('extensions-agi.conf');
    const c = load('extensions.conf');
    expect(c.sections.map((s) => s.name)).toEqual(
      expect.arrayContaining(['ai-dialer-agi', 'ai-dialer-inbound', 'from-internal', 'from-trunk']),
    );
  });

  test('the contexts the flow uses exist, and every Goto/GotoIf target resolves', () => {
    const c = load('extensions.conf');
    const steps = dialplanSteps(c);
    // ari-originate continues answered calls to ai-dialer-agi,s,1 (its default).
    expect(steps.find((s) => s.context === 'ai-dialer-agi' && s.exten === 's' && s.priority === '1')).toBeDefined();
    // DIAL_ENDPOINT=Local/{phone}@from-internal needs a pattern for E.164 numbers.
    expect(steps.some((s) => s.context === 'from-internal' && s.exten === '_+X.' && s.app === 'Dial')).toBe(true);
    const contexts = new Set(c.sections.map((s) => s.name));
    for (const s of steps.filter((x) => x.app === 'Goto')) {
      const [ctx, exten, prio] = s.args.split(',');
      expect(contexts.has(ctx)).toBe(true);
      expect(
        steps.some((x) => x.context === ctx && x.exten === exten && (x.priority === prio || x.label === prio)),
      ).toBe(true);
    }
    for (const s of steps.filter((x) => x.app === 'GotoIf')) {
      const labels = s.args
        .slice(s.args.lastIndexOf('?') + 1)
        .split(':')
        .filter(Boolean);
      for (const l of labels)
        expect(steps.some((x) => x.context === s.context && x.exten === s.exten && x.label === l)).toBe(true);
    }
  });

  test('AGI reaches ${ENV(AGI_TARGET_HOST)}:${ENV(AGI_PORT)} read at run time (no secret in globals); AMD runs before AGI only when AMD_ENABLED=1, with non-default word limit', () => {
    const c = load('extensions.conf');
    const globals = c.sections.find((s) => s.name === 'globals') as ConfSection;
    expect(get(globals, 'AGI_SECRET')).toHaveLength(0);
    const agi = dialplanSteps(c).filter((s) => s.context === 'ai-dialer-agi');
    const agiStep = agi.findIndex((s) => s.app === 'AGI');
    const amdStep = agi.findIndex((s) => s.app === 'AMD');
    expect(agi[agiStep].args).toBe('agi://${AGI_AT}/ai-dialer?secret=${ENV(AGI_SECRET)}');
    // AGI_AT: the originating runtime's AGI_TARGET (channel variable) when set, else the environment's target
    const sets = agi.filter((s) => s.app === 'Set' && s.args.startsWith('AGI_AT=')).map((s) => s.args);
    expect(sets.filter((x) => x.startsWith('AGI_AT=')).sort()).toEqual([
      'AGI_AT=${AGI_TARGET}',
      'AGI_AT=${ENV(AGI_TARGET_HOST)}:${ENV(AGI_PORT)}',
    ]);
    expect(agi.some((s) => s.app === 'GotoIf' && s.args === '$["${AGI_TARGET}" = ""]?agienv')).toBe(true);
    expect(amdStep).toBeGreaterThan(0);
    expect(amdStep).toBeLessThan(agiStep);
    const skip = agi.findIndex((s) => s.app === 'GotoIf' && /AMD_ENABLED/.test(s.args));
    expect(skip).toBeGreaterThanOrEqual(0);
    expect(skip).toBeLessThan(amdStep);
    // AMD(${AMD_PARAMS}): the campaign's parameters, else the default set just before it
    expect(agi[amdStep].args).toBe('${AMD_PARAMS}');
    const dflt = agi.find((s) => s.app === 'Set' && s.args.startsWith('AMD_PARAMS='));
    expect(dflt).toBeDefined();
    const amdArgs = dflt!.args.slice('AMD_PARAMS='.length).split(',').map(Number);
    expect(amdArgs).toHaveLength(9);
    expect(amdArgs[6]).toBeGreaterThan(3); // maximumNumberOfWords
    expect(
      agi.some((s) => /AMD_PATH=machine/.test(s.args) && /NOTSURE/.test(s.args) && /AMD_NOTSURE/.test(s.args)),
    ).toBe(true);
  });

  test('pjsip.conf: endpoint "trunk" (DIAL_ENDPOINT default) with auth, aor, transports and a context that exists', () => {
    const p = load('pjsip.conf');
    const byType = (name: string, type: string) =>
      p.sections.find((s) => s.name === name && get(s, 'type')[0] === type);
    const ep = byType('trunk', 'endpoint') as ConfSection;
    expect(ep).toBeDefined();
    expect(byType(get(ep, 'outbound_auth')[0], 'auth')).toBeDefined();
    expect(byType(get(ep, 'aors')[0], 'aor')).toBeDefined();
    for (const t of ['udp', 'tcp'])
      expect(byType(get(ep, 'transport')[0].replace('${TRUNK_TRANSPORT}', t), 'transport')).toBeDefined();
    const contexts = new Set(load('extensions.conf').sections.map((s) => s.name));
    expect(contexts.has(get(ep, 'context')[0])).toBe(true);
    expect(p.sections.some((s) => get(s, 'type')[0] === 'registration')).toBe(true);
  });

  test('ari.conf and http.conf: ARI enabled, a user whose password comes from the environment, HTTP on 8088 without prefix', () => {
    const a = load('ari.conf');
    expect(get(a.sections.find((s) => s.name === 'general') as ConfSection, 'enabled')).toEqual(['yes']);
    const user = a.sections.find((s) => get(s, 'type')[0] === 'user') as ConfSection;
    expect(user.name).toBe('${ARI_USERNAME}');
    expect(get(user, 'password')).toEqual(['${ARI_PASSWORD}']);
    const h = load('http.conf').sections.find((s) => s.name === 'general') as ConfSection;
    expect(get(h, 'enabled')).toEqual(['yes']);
    expect(get(h, 'bindport')).toEqual(['8088']);
    expect(get(h, 'prefix')).toEqual(['']);
  });

  test('modules.conf requires what the dialer depends on', () => {
    const m = load('modules.conf').sections.find((s) => s.name === 'modules') as ConfSection;
    const req = get(m, 'require');
    for (const mod of [
      'res_ari.so',
      'res_ari_channels.so',
      'res_ari_events.so',
      'res_stasis.so',
      'res_http_websocket.so',
      'res_agi.so',
      'app_amd.so',
      'chan_pjsip.so',
    ]) {
      expect(req).toContain(mod);
    }
  });

  test('no secret is written in the repository: every password/secret is an environment placeholder', () => {
    for (const f of files) {
      for (const s of load(f).sections) {
        for (const e of s.entries) {
          if (/^(password|secret|md5_cred)$|_(password|secret)$/i.test(e.key))
            expect(e.value).toMatch(/^(\$\{[A-Z_]+\})?$/);
        }
      }
    }
  });

  test('every deployment placeholder is one the Asterisk image entrypoint renders', () => {
    const entry = path.join(__dirname, '..', '..', 'deploy', 'asterisk', 'entrypoint.sh');
    if (!fs.existsSync(entry)) return; // the image is optional
    const m = /RENDER_VARS=\(([^)]*)\)/.exec(fs.readFileSync(entry, 'utf8'));
    expect(m).not.toBeNull();
    const rendered = new Set((m as RegExpExecArray)[1].split(/\s+/).filter(Boolean));
    const used = new Set<string>();
    for (const f of ['ari.conf', 'http.conf', 'pjsip.conf', 'modules.conf']) {
      for (const x of fs
        .readFileSync(path.join(dir, f), 'utf8')
        .replace(/;.*$/gm, '')
        .matchAll(/\$\{([A-Z_]+)\}/g))
        used.add(x[1]);
    }
    const globals = load('extensions.conf').sections.find((s) => s.name === 'globals') as ConfSection;
    for (const e of globals.entries) for (const x of e.value.matchAll(/\$\{([A-Z_]+)\}/g)) used.add(x[1]);
    for (const v of used) expect([v, rendered.has(v)]).toEqual([v, true]);
  });
});

describe('conf parser on bad input', () => {
  test('malformed lines, settings outside sections, #exec and missing includes are reported with line numbers', () => {
    const c = parseConf(
      'key = before section\n[ok]\nthis is not a setting\n#exec /bin/sh\n[x](!)\na=b ; comment\n',
      'bad.conf',
    );
    expect(c.errors).toEqual([
      'bad.conf:1: setting outside any [section]',
      'bad.conf:3: cannot parse: this is not a setting',
      'bad.conf:4: #exec is not allowed in shipped configuration',
    ]);
    expect(c.sections.map((s) => [s.name, s.options])).toEqual([
      ['ok', []],
      ['x', ['!']],
    ]);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aid-conf-'));
    fs.writeFileSync(path.join(tmp, 'a.conf'), '#include "missing.conf"\n[s]\nk=v\n');
    expect(loadConf(path.join(tmp, 'a.conf')).errors).toEqual(['a.conf:1: #include missing.conf does not exist']);
    fs.writeFileSync(path.join(tmp, 'b.conf'), '#include c.conf\n');
    fs.writeFileSync(path.join(tmp, 'c.conf'), '#include b.conf\n');
    expect(loadConf(path.join(tmp, 'b.conf')).errors.join()).toMatch(/circular/);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
