package storage

import (
	"slices"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The full-text index's words. Text is cut into runs of letters and digits;
// everything else separates words (spaces, punctuation, symbols, an
// apostrophe: "don't" is "don" and "t", in the text and in a query alike).
// A word is folded so that a search ignores case and accents: each rune is
// decomposed (NFKD: "é" is "e" and a combining acute, "ﬁ" is "fi", a
// full-width "Ａ" is "A"), combining marks are dropped, and what is left is
// lower-cased (with Greek final sigma as sigma). Han, kana and Hangul are
// written without spaces, so each such character is a word of its own: a
// query for 東京 finds the entries holding both characters, which is what a
// search for a CJK word can honestly promise without a dictionary.
//
// The same function cuts entries and queries, so whatever it does, a word
// of an entry is found by the same word in a query.

// maxWordLen bounds an indexed word, in bytes: a longer one is cut (at a
// rune boundary) to its first maxWordLen bytes, in entries and queries
// alike, so it stays findable and a 64 KiB "word" does not make a 64 KiB
// key.
const maxWordLen = 48

// isCJK reports whether r is written without spaces between words.
func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// appendWords appends the distinct words of text to dst, sorted, and
// returns it.
func appendWords(dst []string, text string) []string {
	start := len(dst)
	eachWord(text, func(w []byte) {
		// A word seen just before is common ("the … the"); the rest of the
		// duplicates go at the end.
		if n := len(dst); n == start || dst[n-1] != string(w) {
			dst = append(dst, string(w))
		}
	})
	slices.Sort(dst[start:])
	return append(dst[:start], slices.Compact(dst[start:])...)
}

// hasWords reports whether text holds every one of words (distinct, at
// most 64), without allocating: what a query checks of the entries whose
// words are not indexed yet.
func hasWords(text string, words []string) bool {
	var seen uint64
	all := uint64(1)<<len(words) - 1
	eachWord(text, func(w []byte) {
		for i, x := range words {
			if x == string(w) {
				seen |= 1 << i
			}
		}
	})
	return seen&all == all
}

// eachWord calls fn with each word of text, in order, duplicates included;
// w is valid only during the call.
func eachWord(text string, fn func(w []byte)) {
	var word []byte // the folded word being built
	var stack [maxWordLen + utf8.UTFMax]byte
	word = stack[:0]
	var decomp [64]byte
	emit := func() {
		if len(word) == 0 {
			return
		}
		w := word
		if len(w) > maxWordLen {
			// Cut at a rune boundary.
			n := maxWordLen
			for n > 0 && !utf8.RuneStart(w[n]) {
				n--
			}
			w = w[:n]
		}
		fn(w)
		word = word[:0]
	}
	add := func(r rune) {
		if len(word) <= maxWordLen { // past it the rest is cut anyway
			word = utf8.AppendRune(word, r)
		}
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				add(rune(c))
			case 'A' <= c && c <= 'Z':
				add(rune(c + 'a' - 'A'))
			default:
				emit()
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		switch {
		case isCJK(r):
			emit()
			add(r)
			emit()
			continue
		case unicode.Is(unicode.Mn, r):
			continue // a combining mark within a word: an accent
		case !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r):
			emit()
			continue
		}
		// Decompose the rune alone: NFKD of a rune does not depend on its
		// neighbours except for reordering marks, which are dropped.
		d := norm.NFKD.AppendString(decomp[:0], text[i-size:i])
		for _, r := range string(d) {
			switch {
			case unicode.Is(unicode.Mn, r), unicode.Is(unicode.Me, r):
			case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
				if r == 'ς' {
					r = 'σ'
				}
				add(unicode.ToLower(r))
			default:
				// A compatibility decomposition can hold separators
				// ("½" is "1⁄2"): they separate here too.
				emit()
			}
		}
	}
	emit()
}
