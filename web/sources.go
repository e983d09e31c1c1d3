package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// SourceRoots are the files and directories (relative to the repository
// root) whose content the built dashboard depends on. scripts/frontend-hash.mjs
// hashes the same list after each build into dist/source-hash.txt.
var SourceRoots = []string{
	"web/src", "web/index.html", "web/vite.config.js", "web/package.json",
	"clients/js/src", "clients/react/src", "package-lock.json",
}

// SourceHash hashes the dashboard sources under the repository root fsys:
// for each file, sorted by path, "path\nsha256(content)\n" (CRLF read as
// LF), then sha256 of the whole, in hex.
func SourceHash(fsys fs.FS) (string, error) {
	var files []string
	for _, root := range SourceRoots {
		err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files = append(files, path.Clean(p))
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return "", err
		}
		c := sha256.Sum256([]byte(strings.ReplaceAll(string(b), "\r\n", "\n")))
		h.Write([]byte(f + "\n" + hex.EncodeToString(c[:]) + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// BuiltHash is the source hash recorded by the last build (dist/source-hash.txt).
func BuiltHash() string {
	b, err := fs.ReadFile(Files(), "source-hash.txt")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
