#include "cvmfs/size.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int uint_parse(const char *text, uint64_t *value)
{
	char *end;
	unsigned long long v;

	if (!text || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*value = v;
	return 0;
}

int size_parse(const char *text, uint64_t *bytes)
{
	static const char suffixes[] = "KMGT";
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!text || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end) {
		char c = (char)toupper((unsigned char)*end);
		int i;

		for (i = 0; suffixes[i] && suffixes[i] != c; i++)
			;
		if (!suffixes[i])
			return -EINVAL;
		shift = 10 * (unsigned)(i + 1);
		end++;
		if (*end == 'B' || *end == 'b') /* tolerate "10GB", "10GiB"-less */
			end++;
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = (uint64_t)v << shift;
	return 0;
}
