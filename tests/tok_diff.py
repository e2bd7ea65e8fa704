#!/usr/bin/env python3
"""Differential test of wick's tokenizer against Hugging Face `tokenizers` and `transformers`.

usage: tok_diff.py WICK_BIN [--quick]
For the real Qwen and Llama 3 tokenizers and the fixtures in golden/tok_fixtures: random and
adversarial strings (mixed scripts, emoji, whitespace runs, specials inside text, long inputs)
must give identical ids (with and without added special tokens, and with specials as text);
decoding those ids and random id sequences must give identical text; wick's
decode(encode(s)) must equal the normalized string for the byte-level tokenizers; and
chat templates must render exactly as transformers' apply_chat_template.
Exits non-zero on any mismatch, printing the first few."""
import json, os, random, shutil, subprocess, sys, tempfile, unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
G = os.path.join(HERE, "golden")
WICK = sys.argv[1]
QUICK = "--quick" in sys.argv
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402

fails = []
checks = 0


def fail(what, detail):
    fails.append(what)
    if fails.count(what) <= 3:
        print("MISMATCH", what, detail, file=sys.stderr)


def wick_lines(args, lines):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps(l, ensure_ascii=False) + "\n")
        path = f.name
    try:
        r = subprocess.run([WICK] + args + ["--jsonl", path], capture_output=True)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        fail(" ".join(args), r.stderr.decode(errors="replace"))
        return None
    return [json.loads(x) for x in r.stdout.decode("utf-8").split("\n") if x]


PIECES = [
    "Hello", " world", "the", " quick", "brown", "fox", "don't", "you're", "I'M", "we'll", "THEY'VE", "'s", "'LL",
    "naïve", "café", "Straße", "façade", "über", "e\u0301", "A\u030a", "ﬁ", "Ⅻ", "½", "²", "①",
    "日本語", "のテキスト", "です。", "中文分词", "，", "！", "한국어", " 문장", "Привет", ", мир!", "مرحبا", "नमस्ते",
    "ภาษาไทย", "Ελληνικά", "🤖", "🚀", "👩\u200d👩\u200d👧", "👍🏽", "🇫🇷", "❤️", "\u200b", "\u200d", "\ufeff",
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\u00a0", "\u2009", "\u3000", "\u2028", "\x85",
    "0", "7", "42", "1234567890", "3.14159", "-42", "1e-9", "0x1F",
    "def f(x):", "    return x**2", "  # comment", "{", "}", "[]", "()", "=>", "!=", "<=", "&&", "||", "//", "/*", "*/",
    "https://example.com/path?q=1&r=two#frag", "user@example.org", "C:\\path\\to", "$HOME", "@@", "...", "—", "–",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
    "<s>", "</s>", "<unk>", "New York", "new york", " <mask> ", "<sep>", " <sep>  ", " xyz ", "axyz", "xyz", "½xyz½", "xyz_", "Ⅻxyz", "xyz\u0301", "[CLS]", "[SEP]", "[MASK]", "[INST]", "[/INST]", "<|im_st", "<|", "|>", "<0x41>",
    "\u212b", "\u1f71", "\u0958", "\u1100\u1161", "\uac00\u11a8", "\u0b47\u0b3e", "\u0301", "\u3099",
    "\x00", "\x07", "\x7f", "\x1b[31m", "\ufffd", "\U0001f600", "\U00020000", "aaaaaaaaaaaaaaaaaaaa", "Ġ", "▁", "##",
]


def rand_cp(r):
    """A random character assigned since Unicode 3.2: character classes of characters assigned
    later differ between Unicode versions (Rust crates, PCRE2, utf8proc), which is not what
    this test is about; the fixed PIECES cover recent emoji."""
    while True:
        c = r.choice([r.randint(0x20, 0x7e), r.randint(0xa0, 0x2fff), r.randint(0x3000, 0xd7ff),
                      r.randint(0xe000, 0xfffd), r.randint(0x10000, 0x1fbff), r.randint(0x20000, 0x2fa1f)])
        if unicodedata.ucd_3_2_0.category(chr(c)) not in ("Cs", "Cn"):
            return chr(c)


def make_strings(seed, n):
    r = random.Random(seed)
    out = ["", " ", "a", "\n", "  \n\n  ", "<|im_start|>", "<s>", "[CLS]"]
    for i in range(n):
        k = r.random()
        if k < 0.55:
            s = "".join(r.choice(PIECES) for _ in range(r.randint(1, 25)))
        elif k < 0.75:
            s = "".join(rand_cp(r) for _ in range(r.randint(1, 40)))
        elif k < 0.9:
            s = "".join(r.choice(PIECES) + ("".join(rand_cp(r) for _ in range(r.randint(0, 3)))) for _ in range(20))
        else:
            s = r.choice([" ", "a", "ab", "1", "日", "🤖", "\n", "!", "é"]) * r.randint(2, 300)
        out.append(s)
    big = "".join(r.choice(PIECES) for _ in range(4000 if not QUICK else 800))
    out += [big, "x" * 5000, "日本語" * 1500, " " * 3000 + "end", "\n" * 200]
    return out


def check_encode(name, path, hf, strings, extra, label):
    global checks
    flags = {"plain": [], "special": ["--add-special"], "astext": ["--special-as-text"]}[label]
    got = wick_lines(["tokenize", "--tokenizer", path] + flags, [{"text": s} for s in strings])
    if got is None:
        return None
    ids = []
    for s, g in zip(strings, got):
        want = hf.encode(s, add_special_tokens=(label == "special")).ids
        checks += 1
        if g["ids"] != want:
            fail(f"{name} encode[{label}]", f"{s[:60]!r}: hf {want[:16]} wick {g['ids'][:16]}")
        ids.append(want)
    return ids


def check_decode(name, path, hf, id_lists, skip):
    global checks
    args = ["detokenize", "--tokenizer", path] + (["--skip-special"] if skip else [])
    got = wick_lines(args, [{"ids": i} for i in id_lists])
    if got is None:
        return
    for ids, g in zip(id_lists, got):
        want = hf.decode(ids, skip_special_tokens=skip)
        checks += 1
        if g["text"] != want:
            fail(f"{name} decode[skip={skip}]", f"{ids[:12]}: hf {want[:60]!r} wick {g['text'][:60]!r}")


def check_roundtrip(name, path, strings, norm):
    global checks
    enc = wick_lines(["tokenize", "--tokenizer", path, "--special-as-text"], [{"text": s} for s in strings])
    dec = wick_lines(["detokenize", "--tokenizer", path], enc or [])
    for s, d in zip(strings, dec or []):
        checks += 1
        want = unicodedata.normalize("NFC", s) if norm else s
        if d["text"] != want:
            fail(f"{name} roundtrip", f"{s[:60]!r} -> {d['text'][:60]!r}")


def tokenizer_suite(name, path, seed, specials=False, roundtrip=None):
    hf = Tokenizer.from_file(path)
    n = 60 if QUICK else 250
    strings = make_strings(seed, n)
    ids = check_encode(name, path, hf, strings, None, "plain")
    if specials:
        check_encode(name, path, hf, strings[:80], None, "special")
    hf.encode_special_tokens = True
    check_encode(name, path, hf, strings[:80], None, "astext")
    hf.encode_special_tokens = False
    r = random.Random(seed + 1)
    V = hf.get_vocab_size(with_added_tokens=True)
    rand_ids = [[r.randrange(V) for _ in range(r.randint(1, 30))] for _ in range(80)]
    for skip in (False, True):
        check_decode(name, path, hf, (ids or [])[:150] + rand_ids, skip)
    if roundtrip is not None:
        check_roundtrip(name, path, strings, roundtrip)


# ---- chat templates
TEMPLATES = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
              "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "qwen2.5": "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
               "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
               "helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{%- if (message.role == "
               "\"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}{{- "
               "'<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor "
               "%}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
              "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
              "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
              "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
              "{% endif %}",
    # Llama 3.1's template without its tool-calling branches (no tools are passed here)
    "llama3.1": "{{- bos_token }}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n"
                "{%- endif %}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n"
                "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n"
                "    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n"
                "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
                "{%- if builtin_tools is defined or tools is not none %}\n    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n"
                "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
                "{{- system_message }}\n{{- \"<|eot_id|>\" }}\n{%- for message in messages %}\n"
                "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n"
                "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim"
                " + '<|eot_id|>' }}\n    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n"
                "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n"
                "        {%- if message.content is mapping or message.content is iterable %}\n"
                "            {{- message.content | tojson }}\n        {%- else %}\n            {{- message.content }}\n"
                "        {%- endif %}\n        {{- \"<|eot_id|>\" }}\n    {%- endif %}\n{%- endfor %}\n"
                "{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
                "{%- endif %}\n",
    "mistral": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0)"
               " %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif"
               " %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif "
               "message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only "
               "user and assistant roles are supported!') }}{% endif %}{% endfor %}",
}

CONTENTS = ["Hi", "What is LoRA?", "  padded  ", "\nlead newline", "trail\n\n", "日本語で答えて", "emoji 🤖",
            "<think>\nreasoning here\n</think>\n\nThe answer.", "a</think>b", "<think>x</think>", "multi\nline\ntext",
            "\u3000wide space\u3000", "quote \" back\\slash \x01 tab\t", "<tool_response>\nok\n</tool_response>", "", "x" * 300]


def conversations(seed, n, alternate=False, tools=False):
    r = random.Random(seed)
    out = []
    for _ in range(n):
        msgs = []
        if not alternate and r.random() < 0.5:
            msgs.append({"role": "system", "content": r.choice(CONTENTS)})
        turns = r.randint(1, 6)
        for t in range(turns):
            role = "user" if t % 2 == 0 else "assistant"
            if tools and role == "user" and t > 0 and r.random() < 0.3:
                role = "tool"
            msgs.append({"role": role, "content": r.choice(CONTENTS)})
        out.append(msgs)
    return out


def chat_suite(name, model_dir, convs):
    global checks
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    for i, msgs in enumerate(convs):
        for gen in ((True, False) if i < 2 else (i % 2 == 0,)):
            want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
                json.dump(msgs, f, ensure_ascii=False)
                mpath = f.name
            args = [WICK, "chat-template", "--model", model_dir, "--messages", mpath]
            r = subprocess.run(args + (["--add-generation-prompt"] if gen else []), capture_output=True)
            os.unlink(mpath)
            checks += 1
            got = r.stdout.decode("utf-8")
            if r.returncode != 0 or got != want:
                fail(f"chat {name}[{i}] gen={gen}", f"{msgs}\nwant {want!r}\ngot  {got!r} {r.stderr.decode()}")


def template_dir(root, name, tokenizer_json, bos, eos):
    d = os.path.join(root, name)
    os.makedirs(d)
    shutil.copy(tokenizer_json, os.path.join(d, "tokenizer.json"))
    cfg = {"chat_template": TEMPLATES[name], "bos_token": bos, "eos_token": eos,
           "tokenizer_class": "PreTrainedTokenizerFast"}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return d


def main():
    fx = os.path.join(G, "tok_fixtures")
    tokenizer_suite("qwen", os.path.join(G, "tok_qwen", "tokenizer.json"), 1, roundtrip=True)
    tokenizer_suite("llama3", os.path.join(G, "tok_llama3", "tokenizer.json"), 2, roundtrip=False)
    tokenizer_suite("sp_bpe", os.path.join(fx, "sp_bpe.json"), 3, specials=True)
    tokenizer_suite("sp_meta", os.path.join(fx, "sp_meta.json"), 4, specials=True)
    tokenizer_suite("wordpiece", os.path.join(fx, "wordpiece.json"), 5, specials=True)
    tokenizer_suite("bytelevel", os.path.join(fx, "bytelevel.json"), 6)
    nc = 3 if QUICK else 8
    chat_suite("qwen3", os.path.join(G, "tok_qwen"), conversations(10, nc, tools=True))
    chat_suite("llama3-base", os.path.join(G, "tok_llama3"), conversations(11, nc))
    root = tempfile.mkdtemp()
    try:
        q = os.path.join(G, "tok_qwen", "tokenizer.json")
        chat_suite("chatml", template_dir(root, "chatml", q, None, "<|im_end|>"), conversations(12, nc))
        chat_suite("qwen2.5", template_dir(root, "qwen2.5", q, None, "<|im_end|>"), conversations(13, nc))
        chat_suite("llama3", template_dir(root, "llama3", os.path.join(G, "tok_llama3", "tokenizer.json"),
                                          "<|begin_of_text|>", "<|eot_id|>"), conversations(14, nc))
        chat_suite("llama3.1", template_dir(root, "llama3.1", os.path.join(G, "tok_llama3", "tokenizer.json"),
                                            "<|begin_of_text|>", "<|eot_id|>"), conversations(16, nc, tools=True))
        chat_suite("mistral", template_dir(root, "mistral", os.path.join(fx, "sp_meta.json"), "<s>", "</s>"),
                   conversations(15, nc, alternate=True))
    finally:
        shutil.rmtree(root)
    import collections
    for k, v in sorted(collections.Counter(fails).items()):
        print(f"  {v:5d} mismatches: {k}")
    print(f"tok_diff: {checks} checks, {len(fails)} mismatches")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
