import { parseCsv, detectDelimiter } from '../../src/campaign/import-csv';

describe('parseCsv', () => {
  test('plain rows with line numbers; blank lines skipped', () => {
    const r = parseCsv('a,b\n1,2\n\n3,4\n');
    expect(r).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['1', '2'] },
      { line: 4, fields: ['3', '4'] },
    ]);
  });
  test('quotes, escaped quotes, delimiters and newlines inside quotes', () => {
    const r = parseCsv('name,note\n"Smith, Jo","said ""hi""\nthen left"\nnext,x\n');
    expect(r[1]).toEqual({ line: 2, fields: ['Smith, Jo', 'said "hi"\nthen left'] });
    expect(r[2]).toEqual({ line: 4, fields: ['next', 'x'] });
  });
  test('CRLF, CR-only line ends and a BOM', () => {
    expect(parseCsv('\ufeffa,b\r\n1,2\r\n')).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['1', '2'] },
    ]);
    expect(parseCsv('a\r1\r2').map((x) => [x.line, x.fields[0]])).toEqual([
      [1, 'a'],
      [2, '1'],
      [3, '2'],
    ]);
    expect(parseCsv(Buffer.from('\ufeffx,y\n"1\r\n2",3', 'utf8'))).toEqual([
      { line: 1, fields: ['x', 'y'] },
      { line: 2, fields: ['1\r\n2', '3'] },
    ]);
  });
  test('empty fields, trailing delimiter, no final newline', () => {
    expect(parseCsv('a,,c,\n,,,')).toEqual([
      { line: 1, fields: ['a', '', 'c', ''] },
      { line: 2, fields: ['', '', '', ''] },
    ]);
    expect(parseCsv('"",x')[0].fields).toEqual(['', 'x']);
  });
  test('text after a closing quote is reported on its line and parsing carries on', () => {
    const r = parseCsv('a,b\n"x"y,2\n3,4\n');
    expect(r[1].line).toBe(2);
    expect(r[1].error).toMatch(/after a closing quote/);
    expect(r[2]).toEqual({ line: 3, fields: ['3', '4'] });
  });
  test('an unterminated quote is reported with the line it opened on', () => {
    const r = parseCsv('a,b\n1,2\n3,"open\nmore\n');
    expect(r[2].line).toBe(3);
    expect(r[2].error).toMatch(/unterminated quoted field \(opened on line 3\)/);
  });
  test('quotes inside an unquoted field are kept literally', () => {
    expect(parseCsv('5" disk,x')[0].fields).toEqual(['5" disk', 'x']);
  });
  test('delimiter detection: comma, semicolon, tab; explicit delimiter', () => {
    expect(detectDelimiter('a;b;c\n1,2;3')).toBe(';');
    expect(detectDelimiter('a\tb\n')).toBe('\t');
    expect(detectDelimiter('"x;y",b\n')).toBe(',');
    expect(parseCsv('phone;name\n1;"a;b"')[1].fields).toEqual(['1', 'a;b']);
    expect(parseCsv('a|b', { delimiter: '|' })[0].fields).toEqual(['a', 'b']);
    expect(() => parseCsv('a', { delimiter: '"' })).toThrow(/delimiter/);
  });
  test('unicode survives', () => {
    expect(parseCsv('név,város\nÁrvíztűrő,東京')[1].fields).toEqual(['Árvíztűrő', '東京']);
  });
  test('100k rows parse with correct line numbers', () => {
    const lines = ['phone,name'];
    for (let i = 0; i < 100000; i++) lines.push(`+1212555${String(i % 10000).padStart(4, '0')},"Name ${i}"`);
    const r = parseCsv(lines.join('\r\n'));
    expect(r.length).toBe(100001);
    expect(r[100000]).toEqual({ line: 100001, fields: ['+12125559999', 'Name 99999'] });
  });
});
