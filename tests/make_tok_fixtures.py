#!/usr/bin/env python3
"""Builds the small tokenizer.json fixtures in tests/golden/tok_fixtures with Hugging Face
`tokenizers` (trained on a generated corpus, deterministic):
  sp_bpe.json     SentencePiece-style BPE, byte_fallback, Prepend+Replace normalizer (Llama 2 layout),
                  TemplateProcessing "<s> $A"
  sp_meta.json    BPE with a Metaspace pre-tokenizer (prepend_scheme "first") and Metaspace decoder,
                  byte_fallback, NFKC normalizer (Mistral-style)
  wordpiece.json  BERT WordPiece (BertNormalizer lowercase + accents + CJK, BertPreTokenizer, [CLS]/[SEP])
  bytelevel.json  GPT-2 style byte-level BPE (ByteLevel pre-tokenizer with its own regex, prefix space)
Run: python3 tests/make_tok_fixtures.py  (the outputs are committed; rerun only to change them)."""
import os, random
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, decoders, processors, trainers, AddedToken

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "tok_fixtures")

def corpus():
    r = random.Random(1234)
    words = ("the quick brown fox jumps over lazy dog tokenizer merges byte fallback unicode normalization "
             "training adapter weights gradient descent learning rate schedule batch sequence attention").split()
    extra = ["naïve", "café", "Straße", "façade", "日本語", "中文", "分词", "한국어", "Привет", "мир", "über", "résumé",
             "def", "return", "x**2", "{", "}", "(", ")", "==", "!=", "->", "#", "//", "12345", "3.14"]
    lines = []
    for _ in range(3000):
        n = r.randint(3, 14)
        lines.append(" ".join(r.choice(words + extra) for _ in range(n)))
    return lines

def bytes_tokens():
    return ["<0x%02X>" % b for b in range(256)]

def sp_bpe(lines):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tr = trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"] + bytes_tokens(),
                             show_progress=False)
    tok.train_from_iterator(lines, tr)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok

def sp_meta(lines):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    tr = trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"] + bytes_tokens(),
                             show_progress=False)
    tok.train_from_iterator(lines, tr)
    tok.add_special_tokens([AddedToken("[INST]", special=True, normalized=False),
                            AddedToken("[/INST]", special=True, normalized=False),
                            AddedToken("<sep>", special=True, normalized=False, lstrip=True, rstrip=True)])
    tok.add_tokens([AddedToken("xyz", single_word=True, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok

def wordpiece(lines):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tr = trainers.WordPieceTrainer(vocab_size=700, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                   show_progress=False)
    tok.train_from_iterator(lines, tr)
    tok.add_tokens([AddedToken("New York", normalized=True)])
    tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok

def bytelevel(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=800, special_tokens=["<|endoftext|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, tr)
    return tok

def main():
    os.makedirs(OUT, exist_ok=True)
    lines = corpus()
    for name, fn in [("sp_bpe", sp_bpe), ("sp_meta", sp_meta), ("wordpiece", wordpiece), ("bytelevel", bytelevel)]:
        fn(lines).save(os.path.join(OUT, name + ".json"))
        print("wrote", name)

if __name__ == "__main__":
    main()
