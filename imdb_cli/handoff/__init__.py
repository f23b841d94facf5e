"""The hand-off: a trained model scored on new reviews, and given to others.

- `predict`: a run or an export loaded as a `Predictor`; reviews scored chunk by chunk;
- `review_files`: the reviews to score, from --text, files or standard input;
- `predict_output`: the scores as a table, jsonl, csv, tsv or json, vectors as .npy;
- `export`: `imdb export`: a Hugging Face folder or ONNX, checked before it is kept;
- `onnx`: the ONNX graphs (plain, fused), int8 quantization, the CPU's int8 kernels;
- `export_folder`: what an export folder holds, read back without running its code;
- `model_card`: the export's README.md;
- `modeling_imdb`: the model code an HF export carries (imports only torch, transformers).
"""
