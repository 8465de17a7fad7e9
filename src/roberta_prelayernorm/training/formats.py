"""The task names and their data formats, importable without torch (the command line's help uses them)."""

TASKS = ("sequence-classification", "token-classification", "question-answering", "multiple-choice", "masked-lm")

FORMATS = """Data formats of the five tasks (JSON Lines keys, or CSV columns with JSON in list cells):

  sequence-classification  {"text": str, "text_pair": str (optional), "label": L}; L is a class name (str),
                           a class index (int), a list of names (multi-label) or a float (regression);
                           every record of a file uses the same kind.
  token-classification     {"tokens": [str, ...], "tags": [str, ...]}: one BIO/IOB2 tag per word.
  question-answering       {"question": str, "context": str, "answers": {"text": [str], "answer_start": [int]}}
                           (SQuAD); empty lists mark an unanswerable question. "id" is optional.
  multiple-choice          {"prompt": str, "choices": [str, ...], "label": int (index) or str (a choice)}.
  masked-lm                {"text": str}; texts are concatenated and cut into full max_length blocks.
"""
