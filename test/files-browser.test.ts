// Files in headless Chromium, two people in one channel: Ann attaches an image with the file
// picker and a caption, Ben sees its thumbnail and opens it full size; Ben drops a text file
// on the room and pastes another in the message box, Ann sees their names, types and sizes
// and the link downloads the bytes; a throttled upload shows its progress bar.
import t from 'tap';
import sharp from 'sharp';
import { chromium, type Browser, type Page } from 'playwright-core';
import { findChromium, CHROMIUM_ARGS } from './fixtures/browser.js';
import { startApp, startDb } from './fixtures/chat.js';
import { Agent } from './fixtures/http.js';

const executablePath = findChromium();

if (!executablePath) {
  t.skip('files in a browser, because no Chromium was found (apt-get install chromium)', () => {});
} else {
  const db = await startDb(t);
  const app = await startApp(t, db, { ANONYMOUS_ROOMS: '0', SIGNUP_RATE_LIMIT_PER_ADDRESS: '1000', LOGIN_RATE_LIMIT_PER_ADDRESS: '1000' });
  const ann = new Agent(app.url);
  await ann.signup({ username: 'ann', displayName: 'Ann' });
  await ann.request('PATCH', '/api/workspace', { json: { registration: 'open' }, headers: { 'x-csrf-token': await ann.csrf() } });
  const ben = new Agent(app.url);
  await ben.signup({ username: 'ben', displayName: 'Ben' });
  const room = (await ann.post('/api/rooms', { kind: 'channel', name: 'media' })).json<{ room: { id: string } }>().room.id;
  await ben.post(`/api/rooms/${room}/join`);
  const png = await sharp({ create: { width: 800, height: 600, channels: 3, background: '#e07020' } }).png().toBuffer();

  const browser: Browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const problems: string[] = [];
  async function open(agent: Agent): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, acceptDownloads: true });
    await context.addCookies([{ name: 'sid', value: agent.cookies.get('sid') ?? '', url: app.url }]);
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('response', (res) => {
      if (res.status() >= 400 && !new URL(res.url()).pathname.endsWith('favicon.ico')) problems.push(`${res.status()} ${new URL(res.url()).pathname}`);
    });
    await page.goto(`${app.url}/?room=${room}`);
    await page.waitForSelector('#conn[data-state="live"]');
    await page.waitForFunction(() => document.querySelector('#room-name')?.textContent?.includes('media'));
    return page;
  }
  const annPage = await open(ann);
  const benPage = await open(ben);

  t.test('an image from the picker: a thumbnail on the other side, full size on a click', async (t) => {
    await annPage.fill('#body', 'the sunset');
    await annPage.setInputFiles('#file-input', { name: 'sunset.png', mimeType: 'image/png', buffer: png });
    const card = await benPage.waitForSelector('#messages .msg:has(.attachment .thumb img)');
    t.match(await card.textContent(), /the sunset/, 'with its caption');
    await benPage.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('#messages .attachment .thumb img');
      return Boolean(img?.complete && img.naturalWidth > 0);
    });
    const thumb = await benPage.$eval('#messages .attachment .thumb img', (img) => [(img as HTMLImageElement).naturalWidth, (img as HTMLImageElement).naturalHeight]);
    t.same(thumb, [360, 270], 'the thumbnail, loaded');
    t.equal(await annPage.inputValue('#body'), '', 'the caption left the box');
    await benPage.click('#messages .attachment .thumb');
    await benPage.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('dialog.viewer[open] img');
      return Boolean(img?.complete && img.naturalWidth > 0);
    });
    t.same(await benPage.$eval('dialog.viewer img', (img) => [(img as HTMLImageElement).naturalWidth, (img as HTMLImageElement).naturalHeight]), [800, 600], 'opened full size');
    await benPage.click('dialog.viewer');
    await benPage.waitForFunction(() => !document.querySelector('dialog.viewer[open]'));
  });

  t.test('a text file dropped on the room, one pasted in the box: name, type and size', async (t) => {
    // A drop and a paste as the browser makes them, with a DataTransfer holding a File.
    await benPage.evaluate(`(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['hello, files\\n'], 'notes.txt', { type: 'text/plain' }));
      const zone = document.querySelector('section.room');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
    const link = await annPage.waitForSelector('#messages .attachment a.file:has-text("notes.txt")');
    t.match(await link.textContent(), /notes\.txt.*text\/plain · 13 B/);
    const download = await Promise.all([annPage.waitForEvent('download'), link.click()]).then(([d]) => d);
    t.equal(download.suggestedFilename(), 'notes.txt');
    const path = await download.path();
    const { readFileSync } = await import('node:fs');
    t.equal(readFileSync(path, 'utf8'), 'hello, files\n', 'the link downloads the bytes');

    await benPage.evaluate(`(() => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(3000).fill(65)], 'clip.csv', { type: 'text/csv' }));
      document.querySelector('#body').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    })()`);
    const pasted = await annPage.waitForSelector('#messages .attachment a.file:has-text("clip.csv")');
    t.match(await pasted.textContent(), /clip\.csv.*text\/plain · 2\.9 KB/, 'the type is from the bytes');
  });

  t.test('a progress bar while a file goes up (the upload throttled to 256 KiB/s)', async (t) => {
    const cdp = await annPage.context().newCDPSession(annPage);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 256 * 1024 });
    await annPage.setInputFiles('#file-input', { name: 'slow.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1024 * 1024, 7) });
    await annPage.waitForFunction(() => {
      const bar = document.querySelector<HTMLProgressElement>('#uploads .upload progress');
      return Boolean(bar && bar.value > 0 && bar.value < 1);
    });
    t.match(await annPage.textContent('#uploads .upload'), /slow\.bin \(1\.0 MB\)/, 'named, with its size, part way');
    await benPage.waitForSelector('#messages .attachment a.file:has-text("slow.bin")');
    await annPage.waitForFunction(() => document.querySelectorAll('#uploads .upload').length === 0);
    t.pass('the bar goes once the file is a message');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    t.same(problems, [], 'no errors in either page');
  });
}
