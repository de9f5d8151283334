"""A small MovieLens-layout directory, written by the tests that need one."""

from __future__ import annotations

from pathlib import Path

MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,Jumanji (1995),Adventure|Children|Fantasy
3,"American President, The (1995)",Comedy|Drama|Romance
4,Heat (1995),Action|Crime|Thriller
5,Unrated Film (2001),(no genres listed)
"""

# Not in time order on purpose (real ratings.csv files are sorted by user, not by time).
RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,3,4.0,964981247
1,4,5.0,964982224
2,1,3.5,964982000
2,2,5.0,964983815
3,4,2.0,964980000
3,2,4.5,964984000
3,99,4.0,964984100
3,1,oops,964984200
"""


def write_movielens(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "movies.csv").write_text(MOVIES)
    (directory / "ratings.csv").write_text(RATINGS)
    return directory
