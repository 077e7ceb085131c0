// Thumbnails with sharp (libvips), which reads the image as a stream. Its pixel limit is
// checked against the image's header before anything is decoded: a decompression bomb (a
// small file that says it is 50,000 x 50,000) is refused with a clear error at once, not
// decoded into gigabytes of memory.
import sharp from 'sharp';

export class ImageTooLargeError extends Error {
  override name = 'ImageTooLargeError';
}
export class BadImageError extends Error {
  override name = 'BadImageError';
}

/** The longest side of a thumbnail, in pixels. */
export const THUMB_SIDE = 360;

export interface Thumbnail {
  width: number;
  height: number;
  data: Buffer;
  type: 'image/webp';
}

/** The image's size and a WebP thumbnail, reading `bytes` once. */
export async function makeThumbnail(bytes: AsyncIterable<Buffer>, maxPixels: number): Promise<Thumbnail> {
  const input = sharp({ limitInputPixels: maxPixels, failOn: 'error', sequentialRead: true });
  const meta = input.clone().metadata();
  const thumb = input.clone().rotate().resize(THUMB_SIDE, THUMB_SIDE, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 75 }).toBuffer({ resolveWithObject: true });
  // Errors come through the two promises; the feed stops when sharp does.
  const feed = (async () => {
    try {
      for await (const chunk of bytes) {
        if (!input.write(chunk)) await new Promise<void>((resolve) => input.once('drain', resolve));
      }
      input.end();
    } catch (e) {
      input.destroy(e as Error);
    }
  })();
  try {
    const [m, t] = await Promise.all([meta, thumb]);
    let { width = 0, height = 0 } = m;
    // EXIF orientations 5 to 8 turn the picture a quarter: the size as shown.
    if ((m.orientation ?? 1) >= 5) [width, height] = [height, width];
    return { width, height, data: t.data, type: 'image/webp' };
  } catch (e) {
    const message = (e as Error).message;
    if (/pixel limit/i.test(message)) throw new ImageTooLargeError(`the image has more than ${Math.round(maxPixels / 1e6)} million pixels: too large to show (a picture this large is likely a decompression bomb)`);
    throw new BadImageError(`the image could not be read: ${message}`);
  } finally {
    input.destroy();
    await feed;
  }
}
