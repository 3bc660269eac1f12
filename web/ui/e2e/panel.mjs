// The browser test of the web panel: Playwright drives Debian's chromium
// through what an owner does. gateway/panel_browser_test.go runs it
// against the daemon in the lab and checks the effects from the Go side;
// by hand:
//
//	node web/ui/e2e/panel.mjs --url http://127.0.0.1:8080/ --lease 192.168.1.10 \
//	    --revoke tcp/5555 --forward tcp/8081/192.168.1.10:80 --host-limit 32
//
// Options: --url (the panel), --password (set on first run, else used to
// sign in), --lease ADDR (a DHCP lease that must show), --revoke PROTO/PORT
// (a mapping to revoke), --forward PROTO/PORT/ADDR:PORT (a static forward
// to add), --host-limit N (a setting to change), --traffic (the WAN
// carries a download meanwhile: the chart must show it), --out DIR (screenshots;
// default $GATEWAY_SCREENSHOTS or web/ui/e2e/out), --chromium PATH.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080/' },
    password: { type: 'string', default: 'correct horse battery' },
    lease: { type: 'string' },
    revoke: { type: 'string' },
    forward: { type: 'string' },
    'host-limit': { type: 'string' },
    traffic: { type: 'boolean', default: false },
    out: { type: 'string', default: process.env.GATEWAY_SCREENSHOTS || join(dirname(fileURLToPath(import.meta.url)), 'out') },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
mkdirSync(opt.out, { recursive: true });

const T = 15000;
// axe-core checks each page (WCAG 2 A and AA: contrast, labels, landmarks,
// names); page.evaluate runs it whatever the page's CSP.
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const log = (...a) => console.log('panel:', ...a);
let step = 'start';
const problems = [];

const browser = await chromium.launch({
  executablePath: opt.chromium,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(T);
  const page = await context.newPage();
  page.on('console', m => {
    const t = m.text();
    // A CSP violation, or a script error; not the 401 of a signed-out fetch.
    if (m.type() === 'error' && !/Failed to load resource/.test(t)) problems.push(step + ': console: ' + t);
  });
  page.on('pageerror', e => problems.push(step + ': ' + e.message));

  const heading = name => page.getByRole('heading', { level: 1, name });
  const audit = async name => {
    if (!await page.evaluate(() => typeof axe !== 'undefined')) await page.evaluate(axeSource);
    const r = await page.evaluate(() => axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice'] }));
    for (const v of r.violations) {
      if (v.impact === 'serious' || v.impact === 'critical') {
        problems.push(name + ': accessibility: ' + v.id + ': ' + v.help + ' at ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '));
      }
    }
  };
  const shoot = async name => {
    await page.evaluate(() => { document.activeElement && document.activeElement.blur(); document.getElementById('toast').className = ''; });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.waitForTimeout(300);
    await audit(name);
    await page.screenshot({ path: join(opt.out, name + '-desktop.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 390) problems.push(name + ': on a phone the page is ' + wide + ' px wide, wider than the screen (390 px)');
    await page.screenshot({ path: join(opt.out, name + '-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
  };
  const go = async (link, title) => {
    step = title;
    log('page', title);
    await page.getByRole('navigation').getByRole('link', { name: link, exact: true }).click();
    await heading(title).waitFor();
    await page.locator('.page:not([aria-busy])').waitFor();
  };
  const toastSays = async re => page.locator('#toast.show', { hasText: re }).waitFor();

  step = 'first run';
  await page.goto(opt.url);
  const setup = heading(/choose a password/i);
  const login = heading('Sign in');
  await setup.or(login).waitFor();
  if (await setup.isVisible()) {
    log('first run: setting the password');
    await shoot('setup');
    await page.getByLabel('Password', { exact: true }).fill(opt.password);
    await page.getByLabel('Password again').fill(opt.password + 'x');
    await page.getByRole('button', { name: /set password/i }).click();
    await page.getByRole('alert').filter({ hasText: /differ/ }).waitFor();
    await page.getByLabel('Password again').fill(opt.password);
    await page.getByRole('button', { name: /set password/i }).click();
  } else {
    await page.getByLabel('Password', { exact: true }).fill(opt.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await heading('Overview').waitFor();

  step = 'sign in';
  log('signing out and in again');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await login.waitFor();
  await shoot('signin');
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /./ }).waitFor();
  await page.getByLabel('Password', { exact: true }).fill(opt.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await heading('Overview').waitFor();

  step = 'keyboard';
  const focused = () => page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.textContent));
  if (await focused() !== 'Overview') problems.push('keyboard: after sign-in the focus is on ' + JSON.stringify(await focused()) + ', not the page heading');
  await page.reload();
  await heading('Overview').waitFor();
  await page.keyboard.press('Tab');
  if (!/Skip to content/.test(await focused() || '')) problems.push('keyboard: the first Tab reaches ' + JSON.stringify(await focused()) + ', not the skip link');
  await page.keyboard.press('Enter');
  if (await focused() !== 'main') problems.push('keyboard: the skip link leads to ' + JSON.stringify(await focused()) + ', not main');

  step = 'Overview';
  log('overview');
  await page.locator('.card').first().waitFor();
  await page.locator('svg.plot polyline.rx').waitFor({ state: 'attached' });
  const label1 = await page.locator('svg.plot').getAttribute('aria-label');
  await page.waitForTimeout(4500);
  const label2 = await page.locator('svg.plot').getAttribute('aria-label');
  log('chart:', label2, label1 === label2 ? '(unchanged in 4.5 s)' : '(updated)');
  if (opt.traffic) {
    if (label1 === label2) problems.push('overview: the chart did not change in 4.5 s');
    // The lab downloads through the WAN while this runs: the chart must show it.
    await page.waitForFunction(() => / peak [\d.]+ (Mbit|Gbit)\/s/.test(document.querySelector('svg.plot').getAttribute('aria-label')), null, { timeout: 20000 })
      .catch(() => problems.push('overview: no Mbit/s of traffic on the chart: ' + label2));
  }
  await shoot('overview');

  await go('Devices', 'LAN devices');
  if (opt.lease) {
    log('waiting for the lease of', opt.lease);
    const row = page.getByRole('region', { name: 'Leases' }).getByRole('row').filter({ hasText: opt.lease });
    await row.first().waitFor({ timeout: 30000 });
    const reservation = page.getByRole('region', { name: 'Reservations' }).getByRole('row').filter({ hasText: opt.lease });
    if (await reservation.count()) {
      log('removing the reservation of', opt.lease, 'to make it again from its lease');
      await reservation.getByRole('button', { name: /^Remove/ }).click();
      await toastSays(/removed/);
      await reservation.waitFor({ state: 'detached' });
    }
    await row.first().getByRole('button', { name: /^Reserve/ }).click();
    await toastSays(/reserved/);
    await page.getByRole('region', { name: 'Reservations' }).getByRole('row').filter({ hasText: opt.lease }).waitFor();
    log('reserved', opt.lease);
  }
  await shoot('devices');

  await go('Port mappings', 'Port mappings');
  if (opt.revoke) {
    const [proto, port] = opt.revoke.split('/');
    const name = 'Revoke ' + proto.toUpperCase() + ' port ' + port;
    log('revoking', opt.revoke);
    await page.getByRole('button', { name, exact: true }).waitFor({ timeout: 30000 });
    await shoot('mappings');
    await page.getByRole('button', { name, exact: true }).click();
    await toastSays(/revoked/);
    await page.getByRole('button', { name, exact: true }).waitFor({ state: 'detached' });
  }
  if (opt.forward) {
    const [proto, port, internal] = opt.forward.split('/');
    log('adding the forward', opt.forward);
    await page.getByText('Add a static forward').click();
    const form = page.getByRole('form', { name: 'Add a static forward' });
    await form.getByLabel('Name').fill('e2e');
    await form.getByLabel('Protocol').selectOption(proto);
    await form.getByLabel('External port').fill(port);
    await form.getByLabel(/^To/).fill('not an address');
    await form.getByRole('button', { name: 'Add forward' }).click();
    const err = form.getByRole('alert');
    await err.filter({ hasText: /./ }).waitFor();
    log('bad input refused:', (await err.textContent()).trim());
    await form.getByLabel(/^To/).fill(internal);
    await form.getByRole('button', { name: 'Add forward' }).click();
    await toastSays(/forwards to/);
    await page.getByRole('region', { name: 'Static forwards' }).getByRole('row').filter({ hasText: 'e2e' }).filter({ hasText: port }).waitFor();
  }
  if (!opt.revoke) await shoot('mappings');

  await go('IPv6 pinholes', 'IPv6 pinholes');
  await shoot('pinholes');
  await go('Sessions', 'NAT sessions');
  await shoot('sessions');
  await go('Events', 'Event log');
  await page.locator('.events li').first().waitFor();
  await shoot('events');

  await go('Settings', 'Settings');
  const limit = page.getByLabel('Number of addresses');
  const before = await limit.inputValue();
  log('refused setting: DHCP limit 100000');
  await limit.fill('100000');
  await page.getByRole('button', { name: 'Save settings' }).click();
  const alert = page.getByRole('form', { name: 'Settings' }).getByRole('alert');
  await alert.filter({ hasText: /./ }).waitFor();
  const invalid = page.locator('[aria-invalid=true]');
  if (await invalid.count() !== 1) problems.push('settings: the refused value is not marked (' + await invalid.count() + ' fields with aria-invalid)');
  else log('refused:', (await alert.textContent()).trim(), '; marked:', await invalid.getAttribute('name'), ', focused:', await invalid.evaluate(e => e === document.activeElement));
  await shoot('settings-error');
  await limit.fill(before);
  if (opt['host-limit']) {
    log('setting the per-device limit to', opt['host-limit']);
    await page.getByLabel('Ports per device').fill(opt['host-limit']);
    await page.getByRole('button', { name: 'Save settings' }).click();
    await toastSays(/saved/);
    await page.reload();
    await heading('Settings').waitFor();
    const v = await page.getByLabel('Ports per device').inputValue();
    if (v !== opt['host-limit']) problems.push('settings: after a reload the per-device limit is ' + v);
  }
  await shoot('settings');

  step = 'dark';
  await page.emulateMedia({ colorScheme: 'dark' });
  await go('Overview', 'Overview');
  await shoot('overview-dark');
  await go('Settings', 'Settings');
  await audit('settings-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  step = 'sign out';
  log('signing out');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await login.waitFor();
  const r = await page.request.get(new URL('/api/v1/status', opt.url).href);
  if (r.status() !== 401) problems.push('sign out: /api/v1/status answers ' + r.status() + ', not 401');
} catch (e) {
  problems.push(step + ': ' + (e.message || e).split('\n').slice(0, 6).join('\n'));
  for (const p of browser.contexts().flatMap(c => c.pages())) {
    await p.screenshot({ path: join(opt.out, 'failure.png'), fullPage: true }).catch(() => {});
    problems.push('the page then: ' + join(opt.out, 'failure.png'));
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error('panel: FAILED\n' + problems.join('\n'));
  process.exit(1);
}
log('ok; screenshots in', opt.out);
