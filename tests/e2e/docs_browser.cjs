// Opens both documentation pages in a real browser (Debian's chromium,
// driven by playwright-core) and uses them like a person:
// - /docs (Swagger UI): the operations are listed, "Try it out" on
//   /current_time with a name shows a 200 and the greeting;
// - /redoc (ReDoc): every operation is rendered.
// Every request the pages make is intercepted: any that leaves 127.0.0.1
// fails the test. Screenshots go to SCREENSHOTS_DIR (swagger-ui.png, redoc.png).
//
//   node docs_browser.cjs BASE_URL SCREENSHOTS_DIR
const path = require("node:path");
const { chromium } = require("playwright-core");

const [base, screenshots] = process.argv.slice(2);
const OPERATIONS = ["/hello_world", "/current_time", "/healthcheck"];
const fail = (why) => {
  console.error(`FAIL: ${why}`);
  process.exitCode = 1;
};

// A page whose every request is checked: those that would leave
// 127.0.0.1 are aborted and collected.
async function localPage(browser, elsewhere) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:" || url.protocol === "blob:") return route.continue();
    elsewhere.push(url.href);
    return route.abort();
  });
  return page;
}

async function swaggerUi(browser, elsewhere) {
  const page = await localPage(browser, elsewhere);
  await page.goto(`${base}/docs`);
  await page.locator(".opblock").first().waitFor({ timeout: 15000 });
  const operations = await page.locator(".opblock-summary-path").allInnerTexts();
  console.log(`/docs lists: ${operations.join(", ")}`);
  for (const path of OPERATIONS) {
    if (!operations.some((listed) => listed.replace(/\u200b/g, "") === path)) fail(`/docs does not list ${path}`);
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
  await page.screenshot({ path: path.join(screenshots, "swagger-ui.png"), fullPage: true });
}

async function redoc(browser, elsewhere) {
  const page = await localPage(browser, elsewhere);
  await page.goto(`${base}/redoc`);
  // ReDoc renders each operation's method and path in its endpoint box.
  await page.getByText("/current_time", { exact: true }).first().waitFor({ timeout: 20000 });
  const text = await page.locator("body").innerText();
  const rendered = OPERATIONS.filter((path) => text.includes(path));
  console.log(`/redoc renders: ${rendered.join(", ")} (title: ${await page.title()})`);
  for (const path of OPERATIONS) if (!rendered.includes(path)) fail(`/redoc does not render ${path}`);
  if (text.includes("Something went wrong")) fail("ReDoc reported an error");
  await page.screenshot({ path: path.join(screenshots, "redoc.png") });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  const elsewhere = [];
  try {
    await swaggerUi(browser, elsewhere);
    await redoc(browser, elsewhere);
    if (elsewhere.length > 0) fail(`requests left 127.0.0.1: ${elsewhere.join(", ")}`);
    else console.log("no request left 127.0.0.1");
  } finally {
    await browser.close();
  }
})().catch((error) => fail(error.stack || String(error)));
