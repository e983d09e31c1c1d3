// Drives the official Socket.IO Admin UI (served from its npm package's
// ui/dist) in Debian's Chromium: logs into the tradewire node at SERVER_URL,
// checks that both servers and the socket SOCKET_ID with room ROOM are
// shown, then disconnects that socket from the room page. Prints one JSON
// line with what it saw; exits non-zero on failure.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { UI_URL, SERVER_URL, ADMIN_USER, ADMIN_PASS, SOCKET_ID, ROOM, SERVERS } = process.env;
const servers = SERVERS.split(",");
const profile = mkdtempSync(join(tmpdir(), "adminui-chromium-"));
// A fresh profile directory per run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = {};
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(UI_URL + "/");
  await page.getByLabel("Server URL").fill(SERVER_URL);
  await page.getByLabel("Username").fill(ADMIN_USER);
  await page.getByLabel("Password").fill(ADMIN_PASS);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.waitForFunction(() => !!localStorage.getItem("session_id"));
  seen.sessionStored = true;

  await page.goto(UI_URL + "/#/servers/");
  for (const id of servers) {
    await page.getByRole("cell", { name: id, exact: true }).waitFor();
  }
  seen.servers = servers;

  await page.goto(UI_URL + "/#/sockets/");
  await page.getByText(SOCKET_ID).first().waitFor();
  seen.socket = SOCKET_ID;

  await page.goto(UI_URL + "/#/rooms/");
  await page.getByText(ROOM, { exact: true }).first().waitFor();
  seen.room = ROOM;

  await page.goto(UI_URL + "/#/n/" + encodeURIComponent("/") + "/rooms/" + encodeURIComponent(ROOM));
  const row = page.getByRole("row").filter({ hasText: SOCKET_ID });
  await row.waitFor();
  // The last button of the row is "disconnect" (mdi-logout).
  await row.locator("button:has(.mdi-logout)").click();
  seen.disconnectClicked = true;
  // The UI drops the socket once socket_disconnected arrives.
  await page.goto(UI_URL + "/#/sockets/");
  await page.waitForFunction((id) => !document.body.innerText.includes(id), SOCKET_ID);
  seen.socketGoneFromUI = true;
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error("admin UI check failed:", e.message, JSON.stringify(seen));
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
