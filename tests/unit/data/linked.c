/* A linked program: gdb prints rip-relative operands with a "# 0x... <sym>" comment. */
volatile unsigned char counter;
unsigned char *volatile ptr = (unsigned char *)&counter;

int main(void)
{
	counter = 1;
	int v = counter;
	__atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST);
	unsigned char old = __atomic_exchange_n(&counter, 3, __ATOMIC_SEQ_CST);
	*ptr = (unsigned char)(v + old);
	return counter == 7;
}
