// A message's text as the page shows it: a Markdown subset (bold, italic, strike, inline code,
// code blocks, quotes, lists, links and bare URLs) rendered by markdown-it. Raw HTML is never
// rendered (it stays text); images, headings, tables and rules are off; a link is kept only
// for http(s) and mailto, and opens in a new tab without giving the page a handle on ours.
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt('default', { html: false, linkify: true, breaks: true, typographer: false });
md.disable(['image', 'heading', 'lheading', 'table', 'hr', 'reference', 'html_block', 'html_inline']);

const SAFE_LINK = /^(https?:|mailto:)/i;
md.validateLink = (url: string) => SAFE_LINK.test(url.trim());

const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  const token = tokens[idx];
  token.attrSet('rel', 'noopener noreferrer nofollow');
  token.attrSet('target', '_blank');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

/** The message's text as HTML that holds nothing but the subset's elements. A message of
 *  one paragraph (most are) is its inline content alone, without the <p>. */
export function renderMessage(text: string): string {
  const tokens = md.parse(text, {});
  const one = tokens.length === 3 && tokens[0].type === 'paragraph_open' && tokens[2].type === 'paragraph_close';
  return md.renderer.render(one ? [tokens[1]] : tokens, md.options, {}).trim();
}
