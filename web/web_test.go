package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// TestDistIsFresh fails when web/dist was not rebuilt after a change of the
// dashboard or client sources: run `npm run build` at the repository root
// and commit web/dist.
func TestDistIsFresh(t *testing.T) {
	want, err := SourceHash(os.DirFS(".."))
	if err != nil {
		t.Fatal(err)
	}
	if got := BuiltHash(); got != want {
		t.Fatalf("web/dist is stale: built from sources %q, sources now hash to %q; run `npm ci && npm run build` at the repository root and commit web/dist", got, want)
	}
}

func TestSourceHashChangesWithContent(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, r := range SourceRoots {
		if strings.Contains(r, ".") {
			fsys[r] = &fstest.MapFile{Data: []byte("x")}
		} else {
			fsys[r+"/a.ts"] = &fstest.MapFile{Data: []byte("a\r\nb")}
		}
	}
	h1, err := SourceHash(fsys)
	if err != nil {
		t.Fatal(err)
	}
	fsys["web/src/a.ts"] = &fstest.MapFile{Data: []byte("a\nb")}
	if h2, _ := SourceHash(fsys); h2 != h1 {
		t.Fatal("CRLF and LF must hash the same")
	}
	fsys["web/src/a.ts"] = &fstest.MapFile{Data: []byte("a\nc")}
	if h3, _ := SourceHash(fsys); h3 == h1 {
		t.Fatal("a changed file must change the hash")
	}
	fsys["clients/js/src/b.ts"] = &fstest.MapFile{Data: []byte("")}
	if h4, _ := SourceHash(fsys); h4 == h1 {
		t.Fatal("a new file must change the hash")
	}
	delete(fsys, "package-lock.json")
	if _, err := SourceHash(fsys); err == nil {
		t.Fatal("a missing source root must be an error")
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	get := func(p string) (*http.Response, string) {
		r, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r, string(b)
	}
	r, body := get("/")
	if r.StatusCode != 200 || !strings.Contains(body, `<div id="root">`) || r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("index: %d %q %q", r.StatusCode, r.Header.Get("Cache-Control"), body)
	}
	i := strings.Index(body, "/assets/")
	if i < 0 {
		t.Fatal("index names no asset")
	}
	asset := body[i : i+strings.IndexAny(body[i:], `"`)]
	r, body = get(asset)
	if r.StatusCode != 200 || len(body) == 0 || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("asset %s: %d %q", asset, r.StatusCode, r.Header.Get("Cache-Control"))
	}
	if r, _ = get("/nope.js"); r.StatusCode != 404 {
		t.Fatalf("missing file: %d", r.StatusCode)
	}
	if BuiltHash() == "" {
		t.Fatal("no source-hash.txt in dist")
	}
}
