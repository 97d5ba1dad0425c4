"""The paper's BibTeX entry, the one copy in code: the authors' preferred citation (CITATION.cff of
github.com/BUAADreamer/CCRK); published at KDD 2024. ``mrv.py`` imports it relatively (``evaluate`` copies it
along, and the metric Space ships it) and ``modeling_ccr.losses`` re-exports it as ``CITATION_ONE_TO_K``."""

PAPER_CITATION = """@article{nie2024improving,
  title = {Improving the Consistency in Cross-Lingual Cross-Modal Retrieval with 1-to-K Contrastive Learning},
  author = {Nie, Zhijie and Zhang, Richong and Feng, Zhangchi and Huang, Hailang and Liu, Xudong},
  journal = {CoRR},
  volume = {abs/2406.18254},
  year = {2024},
  url = {https://arxiv.org/abs/2406.18254}
}"""
