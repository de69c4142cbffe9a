import { splitSentences, sentenceEnd } from '../../src/media/sentences';

async function* from(tokens: string[]): AsyncIterable<string> {
  for (const t of tokens) yield t;
}
async function collect(tokens: string[], maxChars?: number): Promise<string[]> {
  const out: string[] = [];
  for await (const s of splitSentences(from(tokens), { maxChars })) out.push(s);
  return out;
}
/** Split text into 1..3 character tokens, as an LLM stream might. */
function tokenize(text: string): string[] {
  const out: string[] = [];
  for (let i = 0, k = 0; i < text.length; k++) {
    const n = 1 + (k % 3);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

describe('splitSentences', () => {
  test('splits on . ! ? and newline, whatever the token boundaries', async () => {
    const text = 'Hello there! How are you today? I am fine.\nBye';
    const want = ['Hello there!', 'How are you today?', 'I am fine.', 'Bye'];
    expect(await collect([text])).toEqual(want);
    expect(await collect(tokenize(text))).toEqual(want);
    expect(await collect(text.split(''))).toEqual(want);
  });

  test('decimals, abbreviations, initials, domains and list numbers are not boundaries', async () => {
    const text =
      'Dr. Smith sees you at 3.5 past two. Mr. J. Brown, e.g. the manager, agreed. Visit example.com today. 1. Bring your card.';
    expect(await collect(tokenize(text))).toEqual([
      'Dr. Smith sees you at 3.5 past two.',
      'Mr. J. Brown, e.g. the manager, agreed.',
      'Visit example.com today.',
      '1. Bring your card.',
    ]);
  });

  test('ellipses, runs of ?! and closing quotes stay with their sentence', async () => {
    expect(await collect(tokenize('Well... maybe. Really?! "Yes." (Sure.) Ok'))).toEqual([
      'Well...',
      'maybe.',
      'Really?!',
      '"Yes."',
      '(Sure.)',
      'Ok',
    ]);
  });

  test('a sentence is yielded as soon as its end is certain, not at the end of the stream', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow(): AsyncIterable<string> {
      yield 'First one. Sec';
      await gate;
      yield 'ond one.';
    }
    const it = splitSentences(slow())[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 'First one.', done: false });
    release();
    expect(await it.next()).toEqual({ value: 'Second one.', done: false });
    expect((await it.next()).done).toBe(true);
  });

  test('a dot at the end of a token waits for the next one (3. then 5 is a decimal)', async () => {
    expect(await collect(['It costs 3.', '5 euros.'])).toEqual(['It costs 3.5 euros.']);
    expect(sentenceEnd('It costs 3.')).toBe(-1);
    expect(sentenceEnd('It costs 3.', true)).toBe(11);
  });

  test('the tail is flushed; empty and whitespace pieces yield nothing', async () => {
    expect(await collect(['no punctuation at all'])).toEqual(['no punctuation at all']);
    expect(await collect(['', '  ', '\n\n'])).toEqual([]);
    expect(await collect([])).toEqual([]);
  });

  test('a run-on sentence is cut at a comma (else a space) past maxChars', async () => {
    const long = 'one two three four five six seven, eight nine ten eleven twelve thirteen fourteen fifteen';
    const out = await collect(tokenize(long), 40);
    expect(out[0]).toBe('one two three four five six seven,');
    expect(out.join(' ')).toBe(long);
    for (const s of out) expect(s.length).toBeLessThanOrEqual(40);
  });
});

describe('splitSentences: the first clause early', () => {
  const split = async (tokens: AsyncIterable<string>, firstClauseChars: number) => {
    const out: string[] = [];
    for await (const s of splitSentences(tokens, { firstClauseChars })) out.push(s);
    return out;
  };
  test('the reply starts with its first clause once it is long enough; the rest goes by sentence', async () => {
    const text = 'Thank you, caller 12, for answer 1. Your appointment is on Tuesday, at ten. Anything else?';
    const want = [
      'Thank you,',
      'caller 12, for answer 1.',
      'Your appointment is on Tuesday, at ten.',
      'Anything else?',
    ];
    expect(await split(from(tokenize(text)), 8)).toEqual(want);
    expect(await split(from([text]), 8)).toEqual(want);
    // off: sentences only
    expect(await split(from([text]), 0)).toEqual([
      'Thank you, caller 12, for answer 1.',
      'Your appointment is on Tuesday, at ten.',
      'Anything else?',
    ]);
  });
  test('too short a clause waits for the next one or the sentence; a comma inside a number is no clause', async () => {
    expect(await split(from(['Yes, ', 'I can do that, ', 'thanks.']), 8)).toEqual(['Yes, I can do that,', 'thanks.']);
    expect(await split(from(['It costs 1,000 dollars. ', 'Fine?']), 8)).toEqual(['It costs 1,000 dollars.', 'Fine?']);
    expect(await split(from(['Sure. ', 'Then, ', 'we are done.']), 4)).toEqual(['Sure.', 'Then, we are done.']);
  });
  test('the clause is yielded the moment the white space after it arrives (the LLM is still writing)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow(): AsyncIterable<string> {
      yield 'Thank ';
      yield 'you, ';
      await gate; // the rest of the reply is not written yet
      yield 'for calling.';
    }
    const it = splitSentences(slow(), { firstClauseChars: 8 })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 'Thank you,', done: false });
    release();
    expect(await it.next()).toEqual({ value: 'for calling.', done: false });
    expect((await it.next()).done).toBe(true);
  });
  test("a comma after a word ends the clause before the next token's space comes; after a digit or a colon it waits", async () => {
    // LLM tokens carry their leading space: the clause is known at "," already
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* tokens(): AsyncIterable<string> {
      yield 'Thank';
      yield ' you';
      yield ',';
      await gate; // " for" is not written yet
      yield ' for';
      yield ' calling.';
    }
    const it = splitSentences(tokens(), { firstClauseChars: 8 })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 'Thank you,', done: false });
    release();
    expect(await it.next()).toEqual({ value: 'for calling.', done: false });
    expect(await split(from(['It costs 1', ',', '000 dollars', ', ', 'fine.']), 8)).toEqual([
      'It costs 1,000 dollars,',
      'fine.',
    ]);
    expect(await split(from(['Go to http', ':', '//example.com', ' now.']), 8)).toEqual([
      'Go to http://example.com now.',
    ]);
  });
});
