/* A first alloy program: open the default device, multiply two small matrices, check the
 * product, print one line. Build against an installed alloy with
 *
 *   cc example.c $(pkg-config --cflags --libs alloy) -o example
 *
 * or with CMake: find_package(alloy) and target_link_libraries(example alloy::alloy). */
#include <alloy.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, alloy_status s)
{
    fprintf(stderr, "example: %s failed: %s (%s)\n", what, alloy_status_string(s),
            alloy_last_error());
    return 1;
}

int main(void)
{
    /* The header and the library must agree. */
    char header_version[32];
    snprintf(header_version, sizeof header_version, "%d.%d.%d", ALLOY_VERSION_MAJOR,
             ALLOY_VERSION_MINOR, ALLOY_VERSION_PATCH);
    if (strcmp(header_version, alloy_version()) != 0) {
        fprintf(stderr, "example: header says %s but the library is %s\n", header_version,
                alloy_version());
        return 1;
    }

    alloy_device *dev = NULL;
    alloy_status s = alloy_device_open(NULL, &dev); /* the default device */
    if (s != ALLOY_OK)
        return fail("alloy_device_open", s);

    /* C (2x2) = A (2x3) @ B (3x2), in host memory the device uses in place. */
    float a[6] = {1, 2, 3, 4, 5, 6};
    float b[6] = {7, 8, 9, 10, 11, 12};
    float c[4] = {0, 0, 0, 0};
    const float want[4] = {58, 64, 139, 154};
    alloy_buffer *ab = NULL, *bb = NULL, *cb_mem = NULL;
    alloy_queue *q = NULL;
    alloy_cmdbuf *cmd = NULL;
    if ((s = alloy_buffer_wrap_host(dev, a, sizeof a, &ab)) != ALLOY_OK ||
        (s = alloy_buffer_wrap_host(dev, b, sizeof b, &bb)) != ALLOY_OK ||
        (s = alloy_buffer_wrap_host(dev, c, sizeof c, &cb_mem)) != ALLOY_OK)
        return fail("alloy_buffer_wrap_host", s);
    const int64_t as[2] = {2, 3}, bs[2] = {3, 2}, cs[2] = {2, 2};
    alloy_array A = alloy_array_contiguous(ab, 0, ALLOY_F32, 2, as);
    alloy_array B = alloy_array_contiguous(bb, 0, ALLOY_F32, 2, bs);
    alloy_array C = alloy_array_contiguous(cb_mem, 0, ALLOY_F32, 2, cs);
    alloy_matmul_desc md = alloy_matmul_desc_default(); /* alpha 1, beta 0 */

    if ((s = alloy_queue_create(dev, &q)) != ALLOY_OK)
        return fail("alloy_queue_create", s);
    if ((s = alloy_cmdbuf_create(q, &cmd)) != ALLOY_OK)
        return fail("alloy_cmdbuf_create", s);
    if ((s = alloy_encode_matmul(cmd, &md, &A, &B, NULL, &C)) != ALLOY_OK)
        return fail("alloy_encode_matmul", s);
    if ((s = alloy_cmdbuf_commit(cmd)) != ALLOY_OK)
        return fail("alloy_cmdbuf_commit", s);
    if ((s = alloy_cmdbuf_wait(cmd)) != ALLOY_OK)
        return fail("alloy_cmdbuf_wait", s);

    for (int i = 0; i < 4; i++)
        if (c[i] != want[i]) {
            fprintf(stderr, "example: c[%d] = %g, expected %g\n", i, (double)c[i],
                    (double)want[i]);
            return 1;
        }

    if ((s = alloy_cmdbuf_destroy(cmd)) != ALLOY_OK || (s = alloy_queue_destroy(q)) != ALLOY_OK ||
        (s = alloy_buffer_destroy(ab)) != ALLOY_OK || (s = alloy_buffer_destroy(bb)) != ALLOY_OK ||
        (s = alloy_buffer_destroy(cb_mem)) != ALLOY_OK || (s = alloy_device_close(dev)) != ALLOY_OK)
        return fail("cleanup", s);
    printf("alloy %s example: [[1 2 3] [4 5 6]] @ [[7 8] [9 10] [11 12]] = "
           "[[%g %g] [%g %g]] ok\n",
           alloy_version(), (double)c[0], (double)c[1], (double)c[2], (double)c[3]);
    return 0;
}
