"""Labelled reviews in, tokenized splits out; one module per job:

- `sources`: reading IMDB's layouts (Hub, parquet folder, aclImdb/) into raw rows;
- `split`: deduplication and the seeded 80/10/10 split;
- `encoding`: tokenizer identity (`tokenizer_key`) and the truncating `Encoder`;
- `store`: the cache on disk: entry names, manifests, checks, temp-folder publishing;
- `memo`: tokenizer keys and model sizes remembered, so a cache hit loads no transformers;
- `prepare`: `imdb prepare`: read, split, tokenize once per tokenizer, reuse what is valid;
- `tokenized`: a prepared entry and its split arrays and texts, as training and analysis read them;
- `locate`: which prepared data a run uses (newest fitting, `--data`, the run's own, `--prepare`).

Nothing here knows about training.
"""
