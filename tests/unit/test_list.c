/* test_list.c: the intrusive list (ferry/list.h): order at both ends,
 * removal from anywhere while walking, and that removing a node that is in
 * no list (zeroed, or already removed) does nothing. */
#include "ferry/list.h"
#include "check.h"

typedef struct item {
    int value;
    ferry_list_t node;
} item_t;

/* The values from first to last, as digits ("" for an empty list). */
static const char *order(const ferry_list_t *head)
{
    static char buf[32];
    size_t n = 0;
    const ferry_list_t *pos;
    ferry_list_foreach(pos, head)
        buf[n++] = (char)('0' + ferry_list_entry(pos, const item_t, node)->value);
    buf[n] = '\0';
    return buf;
}

static void test_ends(void)
{
    ferry_list_t head;
    ferry_list_init(&head);
    CHECK(ferry_list_empty(&head), "a new list is empty");
    CHECK(ferry_list_first(&head) == NULL && ferry_list_last(&head) == NULL,
          "an empty list has no first or last");
    item_t it[4] = {{1, {0}}, {2, {0}}, {3, {0}}, {4, {0}}};
    ferry_list_insert_head(&head, &it[1].node);
    ferry_list_insert_head(&head, &it[0].node);
    ferry_list_insert_tail(&head, &it[2].node);
    ferry_list_insert_tail(&head, &it[3].node);
    CHECK_STR(order(&head), "1234");
    CHECK(ferry_list_first(&head) == &it[0].node, "first is 1");
    CHECK(ferry_list_last(&head) == &it[3].node, "last is 4");
    CHECK(!ferry_list_empty(&head), "not empty with four");
}

static void test_remove(void)
{
    ferry_list_t head;
    ferry_list_init(&head);
    item_t it[5] = {{1, {0}}, {2, {0}}, {3, {0}}, {4, {0}}, {5, {0}}};
    CHECK(!ferry_list_linked(&it[0].node), "a zeroed node is in no list");
    ferry_list_remove(&it[0].node); /* does nothing */
    for (int i = 0; i < 5; i++)
        ferry_list_insert_tail(&head, &it[i].node);
    CHECK(ferry_list_linked(&it[2].node), "an inserted node is linked");
    ferry_list_t *pos, *tmp;
    ferry_list_foreach_safe(pos, tmp, &head)
        if (ferry_list_entry(pos, item_t, node)->value % 2 == 0)
            ferry_list_remove(pos);
    CHECK_STR(order(&head), "135");
    CHECK(!ferry_list_linked(&it[1].node), "a removed node is in no list");
    ferry_list_remove(&it[1].node); /* twice: does nothing */
    CHECK_STR(order(&head), "135");
    ferry_list_remove(&it[0].node);
    ferry_list_remove(&it[4].node);
    CHECK_STR(order(&head), "3");
    ferry_list_remove(&it[2].node);
    CHECK(ferry_list_empty(&head), "empty once all are removed");
}

int main(void)
{
    test_ends();
    test_remove();
    return check_summary();
}
