// Opens /docs in a real browser (Debian's chromium, driven by playwright-core)
// and uses it like a person: the operations are listed, "Try it out" on
// /current_time with a name shows a 200 and the greeting. Every request the
// page makes is intercepted: any that leaves 127.0.0.1 fails the test.
//
//   node docs_browser.cjs BASE_URL SCREENSHOT.png
const { chromium } = require("playwright-core");

const [base, screenshot] = process.argv.slice(2);
const fail = (why) => {
  console.error(`FAIL: ${why}`);
  process.exitCode = 1;
};

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const elsewhere = [];
    await page.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === "127.0.0.1") return route.continue();
      elsewhere.push(url.href);
      return route.abort();
    });

    await page.goto(`${base}/docs`);
    await page.locator(".opblock").first().waitFor({ timeout: 15000 });
    const operations = await page.locator(".opblock-summary-path").allInnerTexts();
    console.log(`operations listed: ${operations.join(", ")}`);
    for (const path of ["/hello_world", "/current_time", "/healthcheck"]) {
      if (!operations.some((listed) => listed.replace(/\u200b/g, "") === path)) fail(`${path} is not listed`);
    }

    const operation = page.locator("#operations-default-current_time");
    await operation.locator(".opblock-summary").click();
    await operation.getByRole("button", { name: "Try it out" }).click();
    await operation.locator('input[placeholder="name"]').fill("Grace Hopper");
    await operation.getByRole("button", { name: "Execute" }).click();
    const status = await operation.locator(".live-responses-table tbody .response-col_status").first().innerText({ timeout: 15000 });
    const body = await operation.locator(".live-responses-table .microlight").first().innerText();
    console.log(`Try it out: ${status.trim()} ${body.replace(/\s+/g, " ")}`);
    if (status.trim() !== "200") fail(`Try it out answered ${status}`);
    if (!body.includes('"message": "Hello Grace Hopper"')) fail("the greeting is not shown");

    await operation.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshot, fullPage: true });
    if (elsewhere.length > 0) fail(`requests left 127.0.0.1: ${elsewhere.join(", ")}`);
    else console.log("no request left 127.0.0.1");
  } finally {
    await browser.close();
  }
})().catch((error) => fail(error.stack || String(error)));
