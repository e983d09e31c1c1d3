// Package web embeds the built dashboard (web/dist, made by `npm run build`
// from web/src and the clients/ packages) and serves it.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed dist
var dist embed.FS

// Files returns the built dashboard: index.html, assets/, source-hash.txt.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil { // the directory is embedded, so this cannot happen
		panic(err)
	}
	return sub
}

// Handler serves the dashboard: "/" is index.html, hashed files under
// /assets/ are cached for a year, and anything else is 404.
func Handler() http.Handler {
	files := http.FileServerFS(Files())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
