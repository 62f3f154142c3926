"""The notebook-facing API."""

from llmrec.recommender.recommender import Recommender
from llmrec.recommender.types import Evidence, Recommendation, RecommendationList, RemovedItem

__all__ = ["Evidence", "Recommendation", "RecommendationList", "Recommender", "RemovedItem"]
