/* What every encode function does around its own checks:
 *   s = alloy__encode_begin(fn, cb);          one encoder, not committed, same process
 *   ... validate into an alloy__op, touching nothing ...
 *   s = alloy__encode_record(fn, cb, &op, buffers, n);   all or nothing
 *   alloy__encode_end(cb);
 */
#ifndef ALLOY_CORE_ENCODE_H
#define ALLOY_CORE_ENCODE_H

#include "validate.h"

alloy_status alloy__encode_begin(const char *fn, alloy_cmdbuf *cb);
void alloy__encode_end(alloy_cmdbuf *cb);
/* Asks the backend whether it runs op, takes a reference on each distinct buffer and
 * appends op. On failure nothing is recorded and no reference is taken. */
alloy_status alloy__encode_record(const char *fn, alloy_cmdbuf *cb, alloy__op *op,
                                  alloy_buffer *const *bufs, int nbufs);

#endif
