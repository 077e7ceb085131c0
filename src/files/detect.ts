// A file's type from its first bytes, never from its name (file-type knows the binary
// formats by their magic numbers); what is left is text or octet-stream, and text that a
// browser would run (HTML, SVG, XML) is named as such so that it is only ever downloaded.
import { fileTypeFromBuffer } from 'file-type';

/** How many first bytes the detection reads. */
export const SNIFF_BYTES = 4100;

export async function detectType(head: Buffer): Promise<string> {
  const found = await fileTypeFromBuffer(head);
  // file-type calls every XML document XML: an SVG image among them runs scripts.
  if (found && !/^(application|text)\/xml$/.test(found.mime)) return found.mime;
  if (head.length === 0) return 'application/octet-stream';
  if (head.includes(0)) return 'application/octet-stream';
  const text = head.toString('utf8').replace(/^\uFEFF/, '').trimStart().slice(0, 1024).toLowerCase();
  if (/<svg[\s>]/.test(text) || (text.startsWith('<?xml') && text.includes('<svg'))) return 'image/svg+xml';
  if (/^<(!doctype html|html|head|body|script|iframe|meta)[\s>]/.test(text) || /<(html|script|iframe|body)[\s>]/.test(text)) return 'text/html';
  if (text.startsWith('<?xml')) return 'application/xml';
  // Not valid UTF-8 (U+FFFD appears where a byte sequence is broken; a cut at the end is fine).
  const decoded = head.subarray(0, Math.max(0, head.length - 4)).toString('utf8');
  if (decoded.includes('\uFFFD')) return 'application/octet-stream';
  return 'text/plain';
}

/** Types shown in the page (images in <img>, text as text). Anything else, and anything a
 *  browser could run (HTML, SVG, XML, PDF with its scripts...), is served as a download. */
const INLINE = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'text/plain', 'video/mp4', 'video/webm', 'audio/mpeg', 'audio/ogg', 'audio/wav']);
export const servedInline = (type: string) => INLINE.has(type);

/** Images sharp makes thumbnails of. */
const THUMBABLE = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/tiff', 'image/heic']);
export const isImage = (type: string) => THUMBABLE.has(type);
