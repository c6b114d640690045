/* ':'-separated lists of paths (persist, lanes), matched against a path
 * relative to the union's root. */
#pragma once

enum path_list_match {
	PATH_LIST_NONE = 0,
	PATH_LIST_ABOVE = 1, /* rel is a directory above a listed path */
	PATH_LIST_EXACT = 2, /* rel is a listed path */
};

/* rel has no leading '/'; list entries may have one ("/home:var/lib"). */
enum path_list_match path_list_match(const char *list, const char *rel);
