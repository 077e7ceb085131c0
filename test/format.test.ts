// The page's message formatting (src/web/format.ts): the Markdown subset renders, and no
// payload becomes markup that runs, loads or navigates anywhere but http(s) and mailto.
import t from 'tap';
import { renderMessage } from '../src/web/format.js';

const ALLOWED_TAGS = new Set(['p', 'br', 'strong', 'em', 's', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a']);

/** Every tag in the HTML, with its attributes. */
function tags(html: string): Array<{ name: string; attrs: Record<string, string> }> {
  const out: Array<{ name: string; attrs: Record<string, string> }> = [];
  // Opening tags (closing ones carry nothing).
  for (const m of html.matchAll(/<([a-zA-Z0-9]+)([^>]*)>/g)) {
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(/([^\s=]+)="([^"]*)"/g)) attrs[a[1].toLowerCase()] = a[2];
    out.push({ name: m[1].toLowerCase(), attrs });
  }
  return out;
}

t.test('the subset renders', async (t) => {
  t.equal(renderMessage('**bold** _it_ ~~gone~~ `x < y`'), '<strong>bold</strong> <em>it</em> <s>gone</s> <code>x &lt; y</code>', 'one paragraph: its inline content');
  t.equal(renderMessage('one\n\ntwo'), '<p>one</p>\n<p>two</p>', 'more: paragraphs');
  t.match(renderMessage('```\nconst a = 1;\n```'), /^<pre><code>const a = 1;\n<\/code><\/pre>$/);
  t.match(renderMessage('> quoted'), /^<blockquote>\n<p>quoted<\/p>\n<\/blockquote>$/);
  t.match(renderMessage('- one\n- two'), /<ul>\n<li>one<\/li>\n<li>two<\/li>\n<\/ul>/);
  t.match(renderMessage('1. one\n2. two'), /<ol>/);
  t.equal(renderMessage('[docs](https://example.test/a?b=1)'), '<a href="https://example.test/a?b=1" rel="noopener noreferrer nofollow" target="_blank">docs</a>');
  t.equal(renderMessage('see https://example.test/x'), 'see <a href="https://example.test/x" rel="noopener noreferrer nofollow" target="_blank">https://example.test/x</a>', 'bare URLs are links');
  t.match(renderMessage('[mail](mailto:ann@example.test)'), /href="mailto:ann@example.test"/);
  t.equal(renderMessage('line one\nline two'), 'line one<br>\nline two', 'a new line is a line break');
  t.equal(renderMessage('# not a heading'), '# not a heading', 'headings are off');
});

const PAYLOADS = [
  '<script>window.__xss=1</script>',
  '<img src=x onerror="window.__xss=1">',
  '<svg onload=alert(1)>',
  '<a href="javascript:alert(1)">x</a>',
  '[x](javascript:alert(1))',
  '[x](JaVaScRiPt:alert(1))',
  '[x]( javascript:alert(1))',
  '[x](&#106;avascript:alert(1))',
  '[x](vbscript:msgbox(1))',
  '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  '[x](file:///etc/passwd)',
  '<javascript:alert(1)>',
  '![img](https://example.test/tracker.png)',
  '![img](javascript:alert(1))',
  '[x](https://example.test/" onmouseover="alert(1))',
  '<iframe src="https://example.test"></iframe>',
  '<!-- comment --><b>bold</b>',
  '<style>body{display:none}</style>',
  '```html\n<script>alert(1)</script>\n```',
  '[x][ref]\n\n[ref]: javascript:alert(1)',
  '<div onclick="alert(1)">click</div>',
  '`<img src=x onerror=alert(1)>`',
  '**<img src=x onerror=alert(1)>**',
  '[<img src=x onerror=alert(1)>](https://example.test)',
];

t.test('no payload becomes live markup', async (t) => {
  for (const payload of PAYLOADS) {
    const html = renderMessage(payload);
    const found = tags(html);
    const bad = found.filter((x) => !ALLOWED_TAGS.has(x.name));
    t.same(bad, [], `${JSON.stringify(payload)}: only the subset's elements`);
    for (const x of found) {
      const names = Object.keys(x.attrs);
      t.ok(names.every((n) => (x.name === 'a' ? ['href', 'rel', 'target'] : x.name === 'code' ? ['class'] : x.name === 'ol' ? ['start'] : []).includes(n)), `${JSON.stringify(payload)}: <${x.name}> has no other attribute (${names.join(' ')})`);
      if (x.name === 'a') t.match(x.attrs.href, /^(https?:|mailto:)/, `${JSON.stringify(payload)}: a link only to http(s) or mailto`);
    }
  }
});
