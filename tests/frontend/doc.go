// Package frontend tests the browser side against the real gateway:
// `go test ./tests/frontend/` builds cmd/tradewire, installs the npm
// workspace at the repository root when needed (npm ci), and runs
//
//   - the vitest suites of @tradewire/client and @tradewire/react (React
//     Testing Library, jsdom) against dev-mode gateways, on React 19 and
//     again on React 18 (tests/frontend/react18);
//   - e2e.mjs: the dashboard in Debian's Chromium through playwright-core
//     (executablePath, no browser download), with screenshots in
//     tests/frontend/artifacts/.
//
// It needs Node.js 20+, npm, redis-server and /usr/bin/chromium (or
// $CHROMIUM); scripts/test installs them. See docs/FRONTEND.md.
package frontend
